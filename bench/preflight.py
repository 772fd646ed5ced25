"""Checks, before anything starts, that the services the bench needs are there."""

from __future__ import annotations

import psycopg
import redis

from bench.databases import POSTGRES_ADMIN_URL
from bench.peers.jobs import redis_url
from bench.sink import find_nginx

CONNECT_TIMEOUT_SECONDS = 3


class PreflightError(RuntimeError):
    """A service the bench needs is missing or unreachable."""


def check_services() -> None:
    """Raise PreflightError naming the first missing piece and how to provide it."""
    find_nginx()
    try:
        with psycopg.connect(POSTGRES_ADMIN_URL, connect_timeout=CONNECT_TIMEOUT_SECONDS):
            pass
    except psycopg.Error as error:
        raise PreflightError(
            f"PostgreSQL is unreachable at {POSTGRES_ADMIN_URL} ({error}); start it, or point "
            "WP_LLM_BENCH_POSTGRES_URL at a server where the bench may create databases"
        ) from None
    client = redis.Redis.from_url(redis_url(), socket_connect_timeout=CONNECT_TIMEOUT_SECONDS)
    try:
        client.ping()
    except redis.RedisError as error:
        raise PreflightError(
            f"Redis is unreachable at {redis_url()} ({error}); "
            "start it, or set WP_LLM_BENCH_REDIS_URL"
        ) from None
    finally:
        client.close()
