"""Client settings: arguments first, then `WP_LLM_*` environment variables, then defaults."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from wp_llm._version import __version__
from wp_llm.exceptions import AuthenticationError

API_KEY_VARIABLE = "WP_LLM_API_KEY"
BASE_URL_VARIABLE = "WP_LLM_BASE_URL"
DEFAULT_BASE_URL = "http://127.0.0.1:8080"
# Every request path starts with the API version, so a base URL is read without it.
API_VERSION_PATH = "/v1"

# Bounds each read, write and wait for a pooled connection; httpx has no limit on a whole call.
DEFAULT_TIMEOUT_SECONDS = 30.0
DEFAULT_CONNECT_TIMEOUT_SECONDS = 5.0
DEFAULT_MAX_RETRIES = 2

USER_AGENT = f"wp-llm-python/{__version__}"


@dataclass(frozen=True)
class ClientConfig:
    """The resolved settings of one client."""

    api_key: str
    base_url: str
    timeout: httpx.Timeout
    max_retries: int

    @property
    def headers(self) -> dict[str, str]:
        """Headers sent with every request."""
        return {
            "Authorization": f"Bearer {self.api_key}",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }


def resolve_config(
    api_key: str | None,
    base_url: str | None,
    timeout: float | httpx.Timeout,
    connect_timeout: float,
    max_retries: int,
    environ: Mapping[str, str] | None = None,
) -> ClientConfig:
    """Combine the arguments with the environment; raise on a missing key or a bad value."""
    env = os.environ if environ is None else environ
    if max_retries < 0:
        raise ValueError(f"max_retries must be 0 or more, got {max_retries}")

    return ClientConfig(
        api_key=_resolve_api_key(api_key, env),
        base_url=_resolve_base_url(base_url, env),
        timeout=_resolve_timeout(timeout, connect_timeout),
        max_retries=max_retries,
    )


def _resolve_api_key(api_key: str | None, env: Mapping[str, str]) -> str:
    resolved = (api_key if api_key is not None else env.get(API_KEY_VARIABLE, "")).strip()
    if not resolved:
        raise AuthenticationError(
            f"No API key: pass api_key= or set {API_KEY_VARIABLE}; "
            "create a key with `wp-llm keys create --account NAME`.",
            status_code=None,
            type="authentication_error",
            code="missing_api_key",
        )
    return resolved


def _resolve_base_url(base_url: str | None, env: Mapping[str, str]) -> str:
    resolved = (base_url or env.get(BASE_URL_VARIABLE, "").strip() or DEFAULT_BASE_URL).rstrip("/")
    try:
        parts = urlsplit(resolved)
        parts.port  # noqa: B018 - reading the port raises ValueError on a bad one
    except ValueError as error:
        raise ValueError(f"base URL {resolved!r} is malformed: {error}") from None
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError(
            f"base URL must look like http://host:port or https://host, got {resolved!r}"
        )

    # Users copy the base URL from an API path such as http://host:8080/v1/webhooks.
    # Without this, every request would go to /v1/v1/..., which no route matches.
    if parts.path.endswith(API_VERSION_PATH):
        resolved = resolved.removesuffix(API_VERSION_PATH).rstrip("/")
    return resolved


def _resolve_timeout(timeout: float | httpx.Timeout, connect_timeout: float) -> httpx.Timeout:
    if isinstance(timeout, httpx.Timeout):
        return timeout
    if timeout <= 0 or connect_timeout <= 0:
        raise ValueError(
            "timeouts must be positive seconds, "
            f"got timeout={timeout}, connect_timeout={connect_timeout}"
        )
    return httpx.Timeout(timeout, connect=min(connect_timeout, timeout))
