"""The claim loop survives an error that is not a database outage."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import Engine

from wp_llm.server.config import Settings
from wp_llm.server.crypto import SecretBox
from wp_llm.server.engine.worker import DeliveryWorker
from wp_llm.server.store import deliveries as delivery_store


def test_unexpected_claim_error_is_retried(
    migrated_engine: Engine,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[str] = []

    def failing_then_empty(*_args: object, **_options: object) -> list[object]:
        calls.append("claim")
        if len(calls) == 1:
            raise KeyError("wh_gone")
        return []

    monkeypatch.setattr(delivery_store, "claim_due", failing_then_empty)
    settings = Settings(database_url=database_url, data_dir=tmp_path, run_worker=False)
    worker = DeliveryWorker(migrated_engine, SecretBox(Fernet.generate_key()), settings)

    async def claim_twice() -> tuple[bool, int, bool, int]:
        first = await worker._claim_once()
        failures_after_first = worker._claim_failures
        second = await worker._claim_once()
        return first, failures_after_first, second, worker._claim_failures

    try:
        with caplog.at_level(logging.ERROR, logger="wp_llm.server.engine.worker"):
            first, failures_after_first, second, failures_after_second = asyncio.run(claim_twice())
    finally:
        worker._executor.shutdown(wait=True)

    assert calls == ["claim", "claim"]
    assert first is False
    assert failures_after_first == 1
    assert "claim failed unexpectedly" in caplog.text
    assert second is False
    assert failures_after_second == 0
