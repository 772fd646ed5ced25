"""`Client` and `AsyncClient`: one HTTP connection pool, the retry loop, the resources."""

from __future__ import annotations

import time
from types import TracebackType
from typing import TypeVar

import anyio
import httpx

from wp_llm._client._async_resources import (
    AsyncDeliveries,
    AsyncEvents,
    AsyncEventTypes,
    AsyncStats,
    AsyncWebhooks,
)
from wp_llm._client._base import APIRequest, BaseClient, Outcome
from wp_llm._client._config import (
    DEFAULT_CONNECT_TIMEOUT_SECONDS,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT_SECONDS,
    resolve_config,
)
from wp_llm._client._models import APIObject
from wp_llm._client._pagination import AsyncPage, AsyncPaginator, Listing, Page
from wp_llm._client._resources import Deliveries, Events, EventTypes, Stats, Webhooks
from wp_llm._client._responses import json_body, parse_list, parse_model

ModelT = TypeVar("ModelT", bound=APIObject)
ClientT = TypeVar("ClientT", bound="Client")
AsyncClientT = TypeVar("AsyncClientT", bound="AsyncClient")


class Client(BaseClient):
    """Synchronous client of the WP LLM webhooks API.

    The API key and base URL default to `WP_LLM_API_KEY` and `WP_LLM_BASE_URL`; without a
    key the constructor raises `AuthenticationError`. `timeout` bounds each read, write and
    wait for a pooled connection, `connect_timeout` each connection attempt, in seconds.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT_SECONDS,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_SECONDS,
        max_retries: int = DEFAULT_MAX_RETRIES,
        http_client: httpx.Client | None = None,
    ) -> None:
        super().__init__(resolve_config(api_key, base_url, timeout, connect_timeout, max_retries))
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client()
        self.webhooks = Webhooks(self)
        self.events = Events(self)
        self.deliveries = Deliveries(self)
        self.event_types = EventTypes(self)
        self.stats = Stats(self)

    def close(self) -> None:
        """Close the connection pool, unless the caller passed its own `http_client`."""
        if self._owns_http:
            self._http.close()

    def __enter__(self: ClientT) -> ClientT:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _send(self, request: APIRequest) -> httpx.Response:
        retries_done = 0
        while True:
            outcome = self._attempt(request)
            delay = self._retry_delay(request, retries_done, outcome)
            if delay is None:
                return self._unwrap(outcome)
            time.sleep(delay)
            retries_done += 1

    def _attempt(self, request: APIRequest) -> Outcome:
        try:
            return self._http.request(**self._request_arguments(request))
        except httpx.RequestError as error:
            return error

    def _model(self, request: APIRequest, model: type[ModelT]) -> ModelT:
        response = self._send(request)
        return parse_model(model, json_body(response), response)

    def _models(self, request: APIRequest, model: type[ModelT]) -> list[ModelT]:
        """Send a request whose response is one whole list object, and return its items."""
        response = self._send(request)
        return parse_list(model, json_body(response), response)[0]

    def _page(self, listing: Listing[ModelT]) -> Page[ModelT]:
        response = self._send(APIRequest("GET", listing.path, params=listing.params))
        data, has_more = parse_list(listing.model, json_body(response), response)
        return Page(listing, data, has_more, self._page)


class AsyncClient(BaseClient):
    """Asynchronous client of the WP LLM webhooks API; the settings are those of `Client`."""

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT_SECONDS,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_SECONDS,
        max_retries: int = DEFAULT_MAX_RETRIES,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(resolve_config(api_key, base_url, timeout, connect_timeout, max_retries))
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient()
        self.webhooks = AsyncWebhooks(self)
        self.events = AsyncEvents(self)
        self.deliveries = AsyncDeliveries(self)
        self.event_types = AsyncEventTypes(self)
        self.stats = AsyncStats(self)

    async def close(self) -> None:
        """Close the connection pool, unless the caller passed its own `http_client`."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self: AsyncClientT) -> AsyncClientT:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def _send(self, request: APIRequest) -> httpx.Response:
        retries_done = 0
        while True:
            outcome = await self._attempt(request)
            delay = self._retry_delay(request, retries_done, outcome)
            if delay is None:
                return self._unwrap(outcome)
            await anyio.sleep(delay)
            retries_done += 1

    async def _attempt(self, request: APIRequest) -> Outcome:
        try:
            return await self._http.request(**self._request_arguments(request))
        except httpx.RequestError as error:
            return error

    async def _model(self, request: APIRequest, model: type[ModelT]) -> ModelT:
        response = await self._send(request)
        return parse_model(model, json_body(response), response)

    async def _models(self, request: APIRequest, model: type[ModelT]) -> list[ModelT]:
        """Send a request whose response is one whole list object, and return its items."""
        response = await self._send(request)
        return parse_list(model, json_body(response), response)[0]

    def _page(self, listing: Listing[ModelT]) -> AsyncPaginator[ModelT]:
        return AsyncPaginator(lambda: self._fetch_page(listing))

    async def _fetch_page(self, listing: Listing[ModelT]) -> AsyncPage[ModelT]:
        response = await self._send(APIRequest("GET", listing.path, params=listing.params))
        data, has_more = parse_list(listing.model, json_body(response), response)
        return AsyncPage(listing, data, has_more, self._fetch_page)
