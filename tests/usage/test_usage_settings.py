"""The WP_LLM_* variables of rate limits, quotas and the usage clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from wp_llm.server.config import ConfigError, load_settings


def test_usage_settings_defaults() -> None:
    settings = load_settings({})

    assert settings.rate_limit == 100
    assert settings.rate_limit_burst is None
    assert settings.rate_limit_store == "auto"
    assert settings.rate_limit_notice_interval == 60
    assert settings.event_quota == 0
    assert settings.quota_warning_thresholds == (80, 90)
    assert settings.clock_offset_file is None


def test_usage_settings_from_environment() -> None:
    settings = load_settings(
        {
            "WP_LLM_RATE_LIMIT": "2.5",
            "WP_LLM_RATE_LIMIT_BURST": "10",
            "WP_LLM_SERVICE_RATE_LIMIT": "0",
            "WP_LLM_RATE_LIMIT_STORE": "Database",
            "WP_LLM_RATE_LIMIT_NOTICE_INTERVAL": "5m",
            "WP_LLM_EVENT_QUOTA": "1000",
            "WP_LLM_QUOTA_WARNING_THRESHOLDS": "90, 50,90",
            "WP_LLM_CLOCK_OFFSET_FILE": "/tmp/offset",
        }
    )

    assert settings.rate_limit == 2.5
    assert settings.rate_limit_burst == 10
    assert settings.service_rate_limit == 0
    assert settings.rate_limit_store == "database"
    assert settings.rate_limit_notice_interval == 300
    assert settings.event_quota == 1000
    # Thresholds come out sorted and without repeats.
    assert settings.quota_warning_thresholds == (50, 90)
    assert settings.clock_offset_file == Path("/tmp/offset")


def test_usage_settings_empty_thresholds_mean_no_warnings() -> None:
    assert load_settings({"WP_LLM_QUOTA_WARNING_THRESHOLDS": ""}).quota_warning_thresholds == ()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("WP_LLM_RATE_LIMIT", "-1"),
        ("WP_LLM_RATE_LIMIT", "fast"),
        ("WP_LLM_RATE_LIMIT_BURST", "0"),
        ("WP_LLM_RATE_LIMIT_STORE", "redis"),
        ("WP_LLM_EVENT_QUOTA", "-5"),
        ("WP_LLM_QUOTA_WARNING_THRESHOLDS", "80,101"),
        ("WP_LLM_QUOTA_WARNING_THRESHOLDS", "0,50"),
        ("WP_LLM_QUOTA_WARNING_THRESHOLDS", "eighty"),
    ],
)
def test_usage_settings_reject_bad_values(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        load_settings({name: value})
