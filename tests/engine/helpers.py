"""Steps that the engine's end-to-end tests share."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx

from wp_llm.server.config import Settings

T = TypeVar("T")


def worker_settings(database_url: str, data_dir: Path, **overrides: Any) -> Settings:
    """Return settings for a worker that a test runs in its own event loop, on loopback."""
    return Settings(
        database_url=database_url,
        data_dir=data_dir,
        run_worker=False,
        allow_private_networks=True,
        **overrides,
    )


def wait_until(check: Callable[[], T], timeout: float = 20.0, interval: float = 0.05) -> T:
    """Call `check` until it returns something true; return that, or fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met within {timeout}s; last value {value!r}")
        time.sleep(interval)


def webhook_of(client: httpx.Client, webhook_id: str) -> dict[str, Any]:
    response = client.get(f"/v1/webhooks/{webhook_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def deliveries_of_webhook(client: httpx.Client, webhook_id: str) -> list[dict[str, Any]]:
    response = client.get(f"/v1/webhooks/{webhook_id}/deliveries", params={"limit": 100})
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


def percentile(values: list[float], fraction: float) -> float:
    """Return the value below which `fraction` of `values` lie (inclusive method)."""
    return statistics.quantiles(values, n=100, method="inclusive")[round(fraction * 100) - 1]
