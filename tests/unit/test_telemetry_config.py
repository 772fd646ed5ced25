"""FastAPI's OpenTelemetry hooks run only where OpenTelemetry is set up."""

from __future__ import annotations

import pytest

from wp_llm.server.api.app import telemetry_config


def test_telemetry_off_without_otel_variables() -> None:
    config = telemetry_config({"PATH": "/usr/bin", "WP_LLM_PORT": "8080"})

    assert config == {"tracing": False, "metrics": False, "logs": False}


@pytest.mark.parametrize(
    "name", ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_SERVICE_NAME", "FASTAPI_OTEL_AUTO_CONFIGURE"]
)
def test_telemetry_defaults_with_otel_variable(name: str) -> None:
    assert telemetry_config({"PATH": "/usr/bin", name: "x"}) is None
