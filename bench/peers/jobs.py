"""Code both peers share: settings from the environment, the job shape and the attempt log."""

from __future__ import annotations

import os
from typing import TypedDict

REDIS_URL_VARIABLE = "WP_LLM_BENCH_REDIS_URL"
# A Redis database of its own, so cleaning up after a run touches no one else's keys.
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/13"
QUEUE_VARIABLE = "WP_LLM_BENCH_QUEUE"
DATABASE_VARIABLE = "WP_LLM_BENCH_ATTEMPTS_DATABASE"
CONCURRENCY_VARIABLE = "WP_LLM_BENCH_CONCURRENCY"
TIMEOUT_VARIABLE = "WP_LLM_BENCH_REQUEST_TIMEOUT"
DEFAULT_REQUEST_TIMEOUT_SECONDS = 15.0
# Retries after the first attempt; both peers back off exponentially between them.
MAX_RETRIES = 8
RETRY_BASE_SECONDS = 5
RETRY_MAX_SECONDS = 3600

CREATE_ATTEMPTS_TABLE = """
CREATE TABLE IF NOT EXISTS peer_attempts (
    id BIGSERIAL PRIMARY KEY,
    delivery_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    attempted_at DOUBLE PRECISION NOT NULL,
    status_code INTEGER,
    latency_ms INTEGER NOT NULL,
    error TEXT
)
"""
INSERT_ATTEMPT = (
    "INSERT INTO peer_attempts"
    " (delivery_id, event_id, attempted_at, status_code, latency_ms, error)"
    " VALUES (%s, %s, %s, %s, %s, %s)"
)


class Job(TypedDict):
    """One delivery as a peer's producer enqueues it."""

    url: str
    event_id: str
    delivery_id: str
    body: str


class DeliveryFailed(Exception):
    """The endpoint responded with a status outside 2xx."""


def redis_url() -> str:
    return os.environ.get(REDIS_URL_VARIABLE, DEFAULT_REDIS_URL)


def queue_name() -> str:
    return os.environ.get(QUEUE_VARIABLE, "wp-llm-bench")


def attempts_database() -> str:
    return os.environ[DATABASE_VARIABLE]


def request_timeout() -> float:
    return float(os.environ.get(TIMEOUT_VARIABLE, DEFAULT_REQUEST_TIMEOUT_SECONDS))


def concurrency() -> int:
    return int(os.environ.get(CONCURRENCY_VARIABLE, "16"))
