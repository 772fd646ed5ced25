"""Producers: publish events to our API over keep-alive connections, at a fixed rate or flat out."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from bench.payload import EVENT_TYPE

# Requests in flight at once while publishing at a fixed rate. When the API falls
# behind, later events wait for a connection. Their latency still counts from the
# moment they were due, so a slow API cannot hide its own queueing.
RATE_CONNECTIONS = 64
REQUEST_TIMEOUT_SECONDS = 30.0
# How long publishing at a fixed rate may run past its schedule when the API falls behind.
PUBLISH_OVERRUN_SECONDS = 120.0


@dataclass
class PublishLog:
    """Due time of each published event, seconds from due to the API's response, and errors."""

    due: dict[str, float] = field(default_factory=dict)
    response_seconds: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class ApiPublisher:
    """Posts events to `/v1/events` with one API key."""

    def __init__(self, base_url: str, api_key: str, connections: int) -> None:
        self._url = base_url + "/v1/events"
        self._batch_url = base_url + "/v1/events/batch"
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> ApiPublisher:
        connector = aiohttp.TCPConnector(limit=self._connections)
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=timeout, headers=self._headers
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def publish(self, data: dict[str, Any]) -> str:
        """Publish one event and return its id; raise RuntimeError unless the API stored it."""
        assert self._session is not None
        async with self._session.post(
            self._url, json={"type": EVENT_TYPE, "data": data}
        ) as response:
            body = await response.read()
            if response.status != 201:
                raise RuntimeError(f"POST /v1/events returned {response.status}: {body[:300]!r}")
        return str(json.loads(body)["id"])

    async def publish_batch(self, data: dict[str, Any], size: int) -> list[str]:
        """Publish `size` events in one batch request and return their ids."""
        assert self._session is not None
        events = [{"type": EVENT_TYPE, "data": data}] * size
        async with self._session.post(self._batch_url, json={"events": events}) as response:
            body = await response.read()
            if response.status != 201:
                raise RuntimeError(
                    f"POST /v1/events/batch returned {response.status}: {body[:300]!r}"
                )
        return [str(item["id"]) for item in json.loads(body)["data"]]


async def publish_at_rate(
    send: Callable[[], Awaitable[str]],
    rate_per_second: float,
    seconds: float,
    *,
    overrun_seconds: float = PUBLISH_OVERRUN_SECONDS,
) -> PublishLog:
    """Call `send` on a fixed schedule, `rate_per_second` times a second for `seconds`.

    The schedule is open-loop: a call is started when it is due even if earlier calls
    have not returned, up to RATE_CONNECTIONS at once. Calls still unfinished
    `overrun_seconds` after the schedule ends are abandoned and counted as errors.
    """
    log = PublishLog()
    total = int(rate_per_second * seconds)
    gate = asyncio.Semaphore(RATE_CONNECTIONS)
    loop = asyncio.get_running_loop()
    start_wall, start_loop = time.time(), loop.time()
    give_up_at = start_loop + seconds + overrun_seconds

    async def one(index: int) -> None:
        due = start_wall + index / rate_per_second
        try:
            async with asyncio.timeout_at(give_up_at), gate:
                event_id = await send()
        except TimeoutError:
            log.errors.append(f"not published within {overrun_seconds:g} s after the schedule")
            return
        except (RuntimeError, aiohttp.ClientError) as error:
            log.errors.append(f"{type(error).__name__}: {error}"[:300])
            return
        log.due[event_id] = due
        log.response_seconds.append(time.time() - due)

    tasks = []
    for index in range(total):
        delay = start_loop + index / rate_per_second - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(index)))
    await asyncio.gather(*tasks)
    return log
