"""Service settings, read from `WP_LLM_*` environment variables.

Every command-line flag of `wp-llm serve` and `wp-llm worker` has a variable here,
and an explicit flag wins over the variable.
"""

from __future__ import annotations

import ipaddress
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

DEFAULT_DATA_DIR = Path("var")
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
MAX_PORT = 65535
# Below these, requests time out before any endpoint can respond and leases lapse mid-request.
MIN_REQUEST_TIMEOUT_SECONDS = 0.1
MIN_LEASE_SECONDS = 1.0

# Delays after the first failed attempt, in seconds: 14 attempts over about 3.2 days.
DEFAULT_RETRY_SCHEDULE_SECONDS: tuple[float, ...] = (
    5,
    60,
    300,
    1800,
    7200,
    18000,
    36000,
    36000,
    36000,
    36000,
    36000,
    36000,
    36000,
)
DEFAULT_RETRY_JITTER = 0.2
DEFAULT_RETRY_AFTER_CAP_SECONDS = 6 * 3600
DEFAULT_REQUEST_TIMEOUT_SECONDS = 15.0
DEFAULT_LEASE_SECONDS = 60.0
DEFAULT_POLL_INTERVAL_SECONDS = 1.0
DEFAULT_MAX_IN_FLIGHT = 256
DEFAULT_PER_ENDPOINT_CONCURRENCY = 16
DEFAULT_RESPONSE_BODY_LIMIT_BYTES = 4096
# Event data of a webhook system is small; a bigger request body is almost certainly a mistake.
DEFAULT_MAX_REQUEST_BYTES = 1024 * 1024
# A revoked key or a changed account limit takes effect in each API process within this time.
DEFAULT_AUTH_CACHE_SECONDS = 5.0
DEFAULT_SHUTDOWN_TIMEOUT_SECONDS = 10.0
DEFAULT_RETENTION_SECONDS = 30 * 86400.0
DEFAULT_PURGE_INTERVAL_SECONDS = 600.0
DEFAULT_DATABASE_POOL_SIZE = 10
DEFAULT_RATE_LIMIT_PER_SECOND = 100.0
DEFAULT_RATE_LIMIT_NOTICE_INTERVAL_SECONDS = 60.0
DEFAULT_QUOTA_WARNING_PERCENTS: tuple[int, ...] = (80, 90)
# Caps on the per-endpoint settings that the API accepts.
DEFAULT_MAX_ENDPOINT_TIMEOUT_SECONDS = 30.0
DEFAULT_MAX_ENDPOINT_CONCURRENCY = 64
DEFAULT_MAX_ENDPOINT_RATE_LIMIT_PER_SECOND = 1000.0
DEFAULT_MAX_RETRY_ATTEMPTS = 20
DEFAULT_MAX_RETRY_DELAY_SECONDS = 86400.0
DEFAULT_MAX_RETRY_WINDOW_SECONDS = 7 * 86400.0
DEFAULT_MAX_GRACE_PERIOD_SECONDS = 7 * 86400.0
DEFAULT_CIRCUIT_FAILURE_THRESHOLD = 10
DEFAULT_CIRCUIT_PROBE_INTERVAL_SECONDS = 60.0
DEFAULT_DISABLE_AFTER_SECONDS = 5 * 86400.0
DEFAULT_METRICS_INTERVAL_SECONDS = 15.0

RateLimitStore = Literal["auto", "memory", "database"]


class ConfigError(ValueError):
    """An environment variable or flag has a value the service cannot use."""


def _parse_bool(name: str, raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ConfigError(f"{name} must be 1/true/yes/on or 0/false/no/off, got {raw!r}")


def _parse_float(name: str, raw: str, *, minimum: float = 0.0) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {raw!r}")
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {raw!r}")
    return value


def _parse_int(name: str, raw: str, *, minimum: int = 1, maximum: int | None = None) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {raw!r}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name} must be at most {maximum}, got {raw!r}")
    return value


_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(name: str, raw: str) -> float:
    """Parse `500ms`, `5s`, `2m`, `1h`, `3d` or a bare number of seconds."""
    text = raw.strip().lower()
    for suffix in sorted(_DURATION_UNITS, key=len, reverse=True):
        if text.endswith(suffix):
            number = text[: -len(suffix)]
            try:
                return _parse_float(name, number) * _DURATION_UNITS[suffix]
            except ConfigError:
                break
    try:
        return _parse_float(name, text)
    except ConfigError:
        raise ConfigError(
            f"{name} must be a duration such as 500ms, 5s, 2m, 1h or 3d, got {raw!r}"
        ) from None


def parse_retry_schedule(name: str, raw: str) -> tuple[float, ...]:
    """Parse a comma-separated list of durations, such as `5s,1m,10m,1h`."""
    parts = [part for part in raw.split(",") if part.strip()]
    if not parts:
        raise ConfigError(f"{name} must list at least one delay, such as '5s,1m,1h', got {raw!r}")
    return tuple(parse_duration(name, part) for part in parts)


def parse_networks(
    name: str, raw: str
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """Parse a comma-separated list of CIDR subnets, such as `10.1.0.0/16,fd00::/8`."""
    networks = []
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ConfigError(f"{name} must list CIDR subnets, got {part!r}") from None
    return tuple(networks)


def parse_percentages(name: str, raw: str) -> tuple[int, ...]:
    """Parse a comma-separated list of whole percentages from 1 to 100, such as `80,90`."""
    values = sorted({_parse_int(name, part.strip()) for part in raw.split(",") if part.strip()})
    if values and values[-1] > 100:
        raise ConfigError(f"{name} must list percentages from 1 to 100, got {raw!r}")
    return tuple(values)


def parse_rate_limit_store(name: str, raw: str) -> RateLimitStore:
    value = raw.strip().lower()
    if value not in {"auto", "memory", "database"}:
        raise ConfigError(f"{name} must be auto, memory or database, got {raw!r}")
    return value  # type: ignore[return-value]


def default_database_url(data_dir: Path) -> str:
    return f"sqlite:///{(data_dir / 'wp-llm.db').as_posix()}"


@dataclass(frozen=True)
class Settings:
    """Everything the API and the delivery engine read at start."""

    data_dir: Path = DEFAULT_DATA_DIR
    database_url: str = ""
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    allow_private_networks: bool = False
    allowed_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    secret_key: str | None = None
    retry_schedule: tuple[float, ...] = DEFAULT_RETRY_SCHEDULE_SECONDS
    retry_jitter: float = DEFAULT_RETRY_JITTER
    retry_after_cap: float = DEFAULT_RETRY_AFTER_CAP_SECONDS
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT_SECONDS
    lease_seconds: float = DEFAULT_LEASE_SECONDS
    poll_interval: float = DEFAULT_POLL_INTERVAL_SECONDS
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    per_endpoint_concurrency: int = DEFAULT_PER_ENDPOINT_CONCURRENCY
    response_body_limit: int = DEFAULT_RESPONSE_BODY_LIMIT_BYTES
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    auth_cache_seconds: float = DEFAULT_AUTH_CACHE_SECONDS
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT_SECONDS
    # Events older than this are purged with their finished deliveries; 0 keeps them forever.
    retention: float = DEFAULT_RETENTION_SECONDS
    purge_interval: float = DEFAULT_PURGE_INTERVAL_SECONDS
    database_pool_size: int = DEFAULT_DATABASE_POOL_SIZE
    # Requests per second of each API key and its bucket size. A rate of 0 turns rate
    # limits off, and no burst means one second of requests. Service keys fall back to
    # the account values.
    rate_limit: float = DEFAULT_RATE_LIMIT_PER_SECOND
    rate_limit_burst: int | None = None
    service_rate_limit: float | None = None
    service_rate_limit_burst: int | None = None
    rate_limit_store: RateLimitStore = "auto"
    rate_limit_notice_interval: float = DEFAULT_RATE_LIMIT_NOTICE_INTERVAL_SECONDS
    # Events each account may publish per calendar month in UTC; 0 means unlimited.
    event_quota: int = 0
    quota_warning_thresholds: tuple[int, ...] = DEFAULT_QUOTA_WARNING_PERCENTS
    # For tests only: a file whose number of seconds the usage clock adds to the wall clock.
    clock_offset_file: Path | None = None
    # Caps on what one endpoint may ask for through the API (retry schedule: delays, count, sum).
    max_endpoint_timeout: float = DEFAULT_MAX_ENDPOINT_TIMEOUT_SECONDS
    max_endpoint_concurrency: int = DEFAULT_MAX_ENDPOINT_CONCURRENCY
    max_endpoint_rate_limit: float = DEFAULT_MAX_ENDPOINT_RATE_LIMIT_PER_SECOND
    max_retry_attempts: int = DEFAULT_MAX_RETRY_ATTEMPTS
    max_retry_delay: float = DEFAULT_MAX_RETRY_DELAY_SECONDS
    max_retry_window: float = DEFAULT_MAX_RETRY_WINDOW_SECONDS
    max_grace_period: float = DEFAULT_MAX_GRACE_PERIOD_SECONDS
    # The circuit of an endpoint opens after this many failed attempts in a row.
    circuit_failure_threshold: int = DEFAULT_CIRCUIT_FAILURE_THRESHOLD
    circuit_probe_interval: float = DEFAULT_CIRCUIT_PROBE_INTERVAL_SECONDS
    # A webhook whose deliveries fail without a success for this long is disabled.
    disable_after: float = DEFAULT_DISABLE_AFTER_SECONDS
    metrics_interval: float = DEFAULT_METRICS_INTERVAL_SECONDS
    run_worker: bool = True
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or default_database_url(self.data_dir)


_READERS = {
    "WP_LLM_DATA_DIR": ("data_dir", lambda n, v: Path(v)),
    "WP_LLM_DATABASE_URL": ("database_url", lambda n, v: v.strip()),
    "WP_LLM_HOST": ("host", lambda n, v: v.strip()),
    "WP_LLM_PORT": ("port", lambda n, v: _parse_int(n, v, maximum=MAX_PORT)),
    "WP_LLM_ALLOW_PRIVATE_NETWORKS": ("allow_private_networks", _parse_bool),
    "WP_LLM_ALLOWED_NETWORKS": ("allowed_networks", parse_networks),
    "WP_LLM_SECRET_KEY": ("secret_key", lambda n, v: v.strip() or None),
    "WP_LLM_RETRY_SCHEDULE": ("retry_schedule", parse_retry_schedule),
    "WP_LLM_RETRY_JITTER": ("retry_jitter", lambda n, v: _parse_float(n, v)),
    "WP_LLM_RETRY_AFTER_CAP": ("retry_after_cap", parse_duration),
    "WP_LLM_REQUEST_TIMEOUT": ("request_timeout", parse_duration),
    "WP_LLM_LEASE_SECONDS": ("lease_seconds", parse_duration),
    "WP_LLM_POLL_INTERVAL": ("poll_interval", parse_duration),
    "WP_LLM_MAX_IN_FLIGHT": ("max_in_flight", lambda n, v: _parse_int(n, v)),
    "WP_LLM_PER_ENDPOINT_CONCURRENCY": ("per_endpoint_concurrency", lambda n, v: _parse_int(n, v)),
    "WP_LLM_RESPONSE_BODY_LIMIT": ("response_body_limit", lambda n, v: _parse_int(n, v)),
    "WP_LLM_MAX_REQUEST_BYTES": ("max_request_bytes", lambda n, v: _parse_int(n, v)),
    "WP_LLM_AUTH_CACHE": ("auth_cache_seconds", parse_duration),
    "WP_LLM_SHUTDOWN_TIMEOUT": ("shutdown_timeout", parse_duration),
    "WP_LLM_RETENTION": ("retention", parse_duration),
    "WP_LLM_PURGE_INTERVAL": ("purge_interval", parse_duration),
    "WP_LLM_DATABASE_POOL_SIZE": ("database_pool_size", lambda n, v: _parse_int(n, v)),
    "WP_LLM_RATE_LIMIT": ("rate_limit", lambda n, v: _parse_float(n, v)),
    "WP_LLM_RATE_LIMIT_BURST": ("rate_limit_burst", lambda n, v: _parse_int(n, v)),
    "WP_LLM_SERVICE_RATE_LIMIT": ("service_rate_limit", lambda n, v: _parse_float(n, v)),
    "WP_LLM_SERVICE_RATE_LIMIT_BURST": ("service_rate_limit_burst", lambda n, v: _parse_int(n, v)),
    "WP_LLM_RATE_LIMIT_STORE": ("rate_limit_store", parse_rate_limit_store),
    "WP_LLM_RATE_LIMIT_NOTICE_INTERVAL": ("rate_limit_notice_interval", parse_duration),
    "WP_LLM_EVENT_QUOTA": ("event_quota", lambda n, v: _parse_int(n, v, minimum=0)),
    "WP_LLM_QUOTA_WARNING_THRESHOLDS": ("quota_warning_thresholds", parse_percentages),
    "WP_LLM_CLOCK_OFFSET_FILE": ("clock_offset_file", lambda n, v: Path(v) if v.strip() else None),
    "WP_LLM_MAX_ENDPOINT_TIMEOUT": ("max_endpoint_timeout", parse_duration),
    "WP_LLM_MAX_ENDPOINT_CONCURRENCY": ("max_endpoint_concurrency", lambda n, v: _parse_int(n, v)),
    "WP_LLM_MAX_ENDPOINT_RATE_LIMIT": ("max_endpoint_rate_limit", lambda n, v: _parse_float(n, v)),
    "WP_LLM_MAX_RETRY_ATTEMPTS": ("max_retry_attempts", lambda n, v: _parse_int(n, v)),
    "WP_LLM_MAX_RETRY_DELAY": ("max_retry_delay", parse_duration),
    "WP_LLM_MAX_RETRY_WINDOW": ("max_retry_window", parse_duration),
    "WP_LLM_MAX_GRACE_PERIOD": ("max_grace_period", parse_duration),
    "WP_LLM_CIRCUIT_FAILURE_THRESHOLD": (
        "circuit_failure_threshold",
        lambda n, v: _parse_int(n, v),
    ),
    "WP_LLM_CIRCUIT_PROBE_INTERVAL": ("circuit_probe_interval", parse_duration),
    "WP_LLM_DISABLE_AFTER": ("disable_after", parse_duration),
    "WP_LLM_METRICS_INTERVAL": ("metrics_interval", parse_duration),
}


def load_settings(
    environ: Mapping[str, str] | None = None, overrides: Mapping[str, object] | None = None
) -> Settings:
    """Build settings from the environment and flags; raise ConfigError naming the bad value.

    A flag in `overrides` (None means not given) wins, so its variable is not even read.
    """
    env = os.environ if environ is None else environ
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    values: dict[str, object] = {}
    for name, (attribute, reader) in _READERS.items():
        raw = env.get(name)
        if raw is not None and attribute not in given:
            values[attribute] = reader(name, raw)
    settings = Settings(**{**values, **given})  # type: ignore[arg-type]
    _check_ranges(settings)
    _check_database_url(settings.database_url)
    _check_secret_key(settings.secret_key)
    return settings


# The service ships drivers for these only. `postgres://` and `postgresql+psycopg://`
# name the same PostgreSQL driver as `postgresql://`.
_DATABASE_URL_PREFIXES = ("sqlite:///", "postgresql://", "postgres://", "postgresql+psycopg://")


def _check_database_url(url: str) -> None:
    """Reject a URL that no shipped driver opens, before anything connects with it."""
    if not url or url.startswith(_DATABASE_URL_PREFIXES):
        return
    scheme, separator, _ = url.partition("://")
    # Only the scheme is shown, because the rest of a URL may contain a password.
    shown = f"a {scheme}:// URL" if separator else repr(url[:40])
    raise ConfigError(
        f"WP_LLM_DATABASE_URL (--database) must start with sqlite:/// or postgresql://, got {shown}"
    )


def _check_secret_key(key: str | None) -> None:
    """Reject a malformed WP_LLM_SECRET_KEY before the database is created or migrated."""
    from wp_llm.server.crypto import SecretBox, SecretKeyError

    if key is None:
        return
    try:
        SecretBox(key)
    except SecretKeyError as error:
        raise ConfigError(str(error)) from None


def _check_ranges(settings: Settings) -> None:
    if not 1 <= settings.port <= MAX_PORT:
        raise ConfigError(f"the port must be between 1 and {MAX_PORT}, got {settings.port}")
    if settings.request_timeout < MIN_REQUEST_TIMEOUT_SECONDS:
        raise ConfigError(
            f"WP_LLM_REQUEST_TIMEOUT must be at least {MIN_REQUEST_TIMEOUT_SECONDS}s, "
            f"got {settings.request_timeout:g}s"
        )
    if settings.lease_seconds < MIN_LEASE_SECONDS:
        raise ConfigError(
            f"WP_LLM_LEASE_SECONDS must be at least {MIN_LEASE_SECONDS:g}s, "
            f"got {settings.lease_seconds:g}s"
        )
    if settings.poll_interval <= 0:
        raise ConfigError(f"WP_LLM_POLL_INTERVAL must be above 0, got {settings.poll_interval:g}s")
    if settings.retry_jitter >= 1:
        raise ConfigError(f"WP_LLM_RETRY_JITTER must be below 1, got {settings.retry_jitter}")
    if settings.purge_interval <= 0:
        interval = settings.purge_interval
        raise ConfigError(f"WP_LLM_PURGE_INTERVAL must be above 0, got {interval:g}s")
    for name, value in (
        ("WP_LLM_MAX_ENDPOINT_TIMEOUT", settings.max_endpoint_timeout),
        ("WP_LLM_MAX_ENDPOINT_RATE_LIMIT", settings.max_endpoint_rate_limit),
        ("WP_LLM_CIRCUIT_PROBE_INTERVAL", settings.circuit_probe_interval),
        ("WP_LLM_METRICS_INTERVAL", settings.metrics_interval),
    ):
        if value <= 0:
            raise ConfigError(f"{name} must be above 0, got {value:g}")
