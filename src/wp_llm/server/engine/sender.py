"""Sends one signed delivery request with aiohttp and reports what happened.

aiohttp was chosen by measurement: on a 2-core machine it sustained about 10,000
requests/s at 64 connections on uvloop, where httpx.AsyncClient managed about 300.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp

from wp_llm._signing import sign_hex, sign_standard
from wp_llm.server.engine.netguard import AddressPolicy, GuardedResolver
from wp_llm.server.engine.retry import parse_retry_after

USER_AGENT = "WP-LLM-Webhooks/0.1"
CONNECTION_POOL_SIZE = 1024
DNS_CACHE_SECONDS = 10
READ_CHUNK_BYTES = 16 * 1024


@dataclass(frozen=True)
class SendResult:
    """What one attempt got back; `status_code` is None when no response arrived."""

    status_code: int | None
    latency_ms: int
    error: str | None
    response_body: str | None
    response_truncated: bool
    retry_after: float | None

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def delivery_headers(
    *, event_id: str, event_type: str, delivery_id: str, secrets: Sequence[str], body: bytes, timestamp: int
) -> dict[str, str]:
    """Build the contract's headers; the newest secret signs `X-WP-LLM-Signature`."""
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-WP-LLM-Signature": sign_hex(secrets[0], body),
        "X-WP-LLM-Event": event_type,
        "X-WP-LLM-Delivery": delivery_id,
        "webhook-id": event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign_standard(secrets, event_id, timestamp, body),
    }


class Sender:
    """A pooled HTTP client that posts deliveries within a total deadline."""

    def __init__(self, policy: AddressPolicy, *, timeout: float, body_limit: int) -> None:
        self._policy = policy
        self._timeout = timeout
        self._body_limit = body_limit
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Sender:
        connector = aiohttp.TCPConnector(
            limit=CONNECTION_POOL_SIZE,
            limit_per_host=0,
            resolver=GuardedResolver(self._policy),
            ttl_dns_cache=DNS_CACHE_SECONDS,
        )
        self._session = aiohttp.ClientSession(
            connector=connector, auto_decompress=False, skip_auto_headers=("User-Agent",)
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._session is not None:
            await self._session.close()

    def _literal_blocked(self, url: str) -> str | None:
        # aiohttp skips the resolver for IP literals, so check them here.
        host = urlsplit(url).hostname or ""
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return None
        return self._policy.blocked_reason(address)

    async def send(self, url: str, body: bytes, headers: Mapping[str, str]) -> SendResult:
        assert self._session is not None, "use Sender as an async context manager"
        started = time.perf_counter()
        blocked = self._literal_blocked(url)
        if blocked is not None:
            return self._failure(started, f"refused: the URL points at {blocked}")
        try:
            async with asyncio.timeout(self._timeout):
                return await self._post(url, body, headers, started)
        except TimeoutError:
            return self._failure(started, f"timed out after {self._timeout:g}s")
        except aiohttp.ClientConnectorError as error:
            return self._failure(started, f"connection failed: {error.os_error or error}")
        except aiohttp.ClientError as error:
            return self._failure(started, f"request failed: {type(error).__name__}: {error}")
        except OSError as error:
            return self._failure(started, f"connection failed: {error}")

    async def _post(self, url: str, body: bytes, headers: Mapping[str, str], started: float) -> SendResult:
        assert self._session is not None
        async with self._session.post(url, data=body, headers=headers, allow_redirects=False) as response:
            raw = await self._read_capped(response)
            latency = _elapsed_ms(started)
            error = None
            if 300 <= response.status < 400:
                location = response.headers.get("Location", "")
                error = f"redirect not followed: {response.status} to {location[:200]!r}"
            elif not 200 <= response.status < 300:
                error = f"endpoint answered {response.status}"
            return SendResult(
                status_code=response.status,
                latency_ms=latency,
                error=error,
                response_body=raw[: self._body_limit].decode("utf-8", errors="replace"),
                response_truncated=len(raw) > self._body_limit,
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
            )

    async def _read_capped(self, response: aiohttp.ClientResponse) -> bytes:
        """Read at most one byte past the limit, so truncation is known without reading it all."""
        chunks: list[bytes] = []
        remaining = self._body_limit + 1
        while remaining > 0:
            chunk = await response.content.read(min(READ_CHUNK_BYTES, remaining))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)

    @staticmethod
    def _failure(started: float, error: str) -> SendResult:
        return SendResult(None, _elapsed_ms(started), error, None, False, None)


def _elapsed_ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)
