"""Fixtures of the engine tests: aiohttp receivers on loopback."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.engine.servers import ScriptedReceiver


@pytest.fixture
def scripted() -> Iterator[Callable[..., ScriptedReceiver]]:
    """Start scripted receivers with `scripted(handler, ...)`; all stop after the test."""
    started: list[ScriptedReceiver] = []

    def start(*args: object, **options: object) -> ScriptedReceiver:
        receiver = ScriptedReceiver(*args, **options).start()  # type: ignore[arg-type]
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.stop()
