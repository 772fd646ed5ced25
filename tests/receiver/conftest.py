"""Fixtures shared by the receiver toolkit tests."""

from __future__ import annotations

import importlib.util
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from wp_llm.webhooks import Webhook

from .samples import NOW, SECRET

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def webhook() -> Webhook:
    """A Webhook for SECRET whose clock is fixed at NOW."""
    return Webhook(SECRET, clock=lambda: NOW)


@pytest.fixture
def redis_client() -> Iterator[Any]:
    """A client of the local Redis server; a test's keys use `redis_prefix`."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    yield client
    client.close()


@pytest.fixture
def redis_prefix(redis_client: Any) -> Iterator[str]:
    """A key prefix unique to the test; its keys are deleted afterwards."""
    prefix = f"wp_llm_test:{uuid.uuid4().hex}:"
    yield prefix
    keys = list(redis_client.scan_iter(match=prefix + "*"))
    if keys:
        redis_client.delete(*keys)


EXAMPLES_DIRECTORY = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def load_example(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Callable[[str], ModuleType]]:
    """Import a file of examples/ as a fresh module, with the secret in its environment."""
    monkeypatch.setenv("WP_LLM_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("WP_LLM_DEDUPLICATION_DATABASE", str(tmp_path / "received.sqlite3"))
    loaded: list[str] = []

    def load(file_name: str) -> ModuleType:
        module_name = f"wp_llm_example_{Path(file_name).stem}_{uuid.uuid4().hex}"
        spec = importlib.util.spec_from_file_location(module_name, EXAMPLES_DIRECTORY / file_name)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        loaded.append(module_name)
        spec.loader.exec_module(module)
        return module

    yield load
    for module_name in loaded:
        sys.modules.pop(module_name, None)
