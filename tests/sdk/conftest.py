"""Fixtures of the client tests: SDK clients on a fresh account, and a scripted server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

import wp_llm
from tests.conftest import Account
from tests.sdk.scripted import ScriptedServer

# A webhook URL that passes the service's URL checks. Deliveries to it fail, so the tests
# that look at deliveries use the `receiver` fixture instead.
EXAMPLE_URL = "https://example.com/hooks"

GENERATION_STARTED = {
    "id": "gen_1",
    "object": "text_generation",
    "created": 1,
    "model": "wp-llm-code-1",
    "prompt": "Write a plugin",
}


@pytest.fixture
def client(account: Account) -> Iterator[wp_llm.Client]:
    with wp_llm.Client(account.key, base_url=account.service.base_url) as sdk_client:
        yield sdk_client


@pytest.fixture
async def async_client(account: Account) -> AsyncIterator[wp_llm.AsyncClient]:
    async with wp_llm.AsyncClient(account.key, base_url=account.service.base_url) as sdk_client:
        yield sdk_client


@pytest.fixture
def scripted() -> Iterator[ScriptedServer]:
    server = ScriptedServer().start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _no_client_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the developer's WP_LLM_API_KEY and WP_LLM_BASE_URL out of the tests."""
    monkeypatch.delenv("WP_LLM_API_KEY", raising=False)
    monkeypatch.delenv("WP_LLM_BASE_URL", raising=False)
