"""Usage notices and announcements carry data that their catalog schemas accept."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from wp_llm.server.usage import announcements, notices
from wp_llm.server.usage.announcements import AnnouncementError
from wp_llm.server.usage.quota import QuotaPolicy, month_period
from wp_llm.server.usage.ratelimit import RateDecision
from wp_llm.server.validation import validate_event_data

NOW = datetime(2024, 2, 1, tzinfo=UTC).timestamp()
PERIOD = month_period(NOW)
POLICY = QuotaPolicy(quota=1000)


def test_limit_exceeded_data_matches_schema() -> None:
    decision = RateDecision(
        allowed=False, limit=60, remaining=0, reset_at=1706745660, retry_after=1
    )

    data = notices.limit_exceeded_data(decision)

    assert validate_event_data(notices.LIMIT_EXCEEDED, data) == []
    assert data == {"limit": 60, "current_usage": 61, "reset_time": 1706745660, "retry_after": 1}


def test_quota_exceeded_data_matches_schema() -> None:
    data = notices.quota_exceeded_data(POLICY, 1000, PERIOD)

    assert validate_event_data(notices.QUOTA_EXCEEDED, data) == []


def test_warning_data_matches_schema() -> None:
    data = notices.warning_data(POLICY, 800, 80, PERIOD)

    assert validate_event_data(notices.QUOTA_WARNING, data) == []


def test_maintenance_data_matches_schema() -> None:
    data = announcements.maintenance_data(
        " Database upgrade ", "2024-02-04T02:00:00Z", "2024-02-04T03:00:00+00:00", NOW
    )

    assert validate_event_data(announcements.MAINTENANCE, data) == []
    assert data == {"message": "Database upgrade", "starts_at": 1707012000, "ends_at": 1707015600}


def test_update_data_defaults_published_at_to_now() -> None:
    data = announcements.update_data("New model", "2024.02.1", None, NOW)

    assert validate_event_data(announcements.UPDATE, data) == []
    assert data == {"message": "New model", "version": "2024.02.1", "published_at": int(NOW)}


def test_update_data_without_version_omits_it() -> None:
    data = announcements.update_data("New model", None, "2024-02-01T10:00:00+01:00", NOW)

    assert data == {"message": "New model", "published_at": int(NOW) + 9 * 3600}


@pytest.mark.parametrize(
    ("starts_at", "ends_at", "message", "expected"),
    [
        (None, "2024-02-04T03:00:00Z", "window", "needs --starts-at and --ends-at"),
        ("tomorrow", "2024-02-04T03:00:00Z", "window", "is not an ISO 8601 time"),
        # A time without an offset could be any zone, so it is rejected.
        ("2024-02-04T02:00:00", "2024-02-04T03:00:00Z", "window", "has no UTC offset"),
        ("2024-02-04T03:00:00Z", "2024-02-04T02:00:00Z", "window", "is not before --ends-at"),
        ("2024-02-04T02:00:00Z", "2024-02-04T02:00:00Z", "window", "is not before --ends-at"),
        ("2024-01-04T02:00:00Z", "2024-01-04T03:00:00Z", "window", "is in the past"),
        ("2024-02-04T02:00:00Z", "2024-02-04T03:00:00Z", "   ", "--message is empty"),
        ("2024-02-04T02:00:00Z", "2024-02-04T03:00:00Z", "x" * 2001, "more than the maximum"),
    ],
)
def test_maintenance_data_rejects_bad_input(
    starts_at: str | None, ends_at: str | None, message: str, expected: str
) -> None:
    with pytest.raises(AnnouncementError, match=expected):
        announcements.maintenance_data(message, starts_at, ends_at, NOW)


def test_update_data_rejects_empty_version() -> None:
    with pytest.raises(AnnouncementError, match="--version must be"):
        announcements.update_data("New model", " ", None, NOW)


def test_update_data_carries_a_roll_out_window() -> None:
    data = announcements.update_data(
        "Rolling out",
        None,
        None,
        NOW,
        starts_at="2024-02-02T10:00:00+00:00",
        ends_at="2024-02-02T12:00:00+00:00",
    )

    assert validate_event_data(announcements.UPDATE, data) == []
    assert data["ends_at"] - data["starts_at"] == 7200


def test_update_data_rejects_a_window_that_ends_first() -> None:
    with pytest.raises(AnnouncementError, match="not before"):
        announcements.update_data(
            "Rolling out",
            None,
            None,
            NOW,
            starts_at="2024-02-02T12:00:00+00:00",
            ends_at="2024-02-02T10:00:00+00:00",
        )
