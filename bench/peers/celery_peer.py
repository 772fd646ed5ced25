"""The Celery peer: a `requests`-based task with automatic retries and a Redis broker.

Start a worker with `celery -A bench.peers.celery_peer worker`; the bench chooses the
pool and concurrency. Every thread or process keeps its own `requests.Session` and
database connection, as the documentation of both libraries advises.
"""

from __future__ import annotations

import threading
import time

import psycopg
import requests
from celery import Celery

from bench.payload import signed_headers
from bench.peers.jobs import (
    INSERT_ATTEMPT,
    MAX_RETRIES,
    RETRY_MAX_SECONDS,
    DeliveryFailed,
    Job,
    attempts_database,
    queue_name,
    redis_url,
    request_timeout,
)

TASK_NAME = "bench.deliver"

app = Celery("wp_llm_bench_peer", broker=redis_url())
app.conf.update(
    task_default_queue=queue_name(),
    task_ignore_result=True,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)

_local = threading.local()


def _session() -> requests.Session:
    if not hasattr(_local, "session"):
        _local.session = requests.Session()
    return _local.session  # type: ignore[no-any-return]


def _database() -> psycopg.Connection:
    if not hasattr(_local, "database"):
        _local.database = psycopg.connect(attempts_database(), autocommit=True)
    return _local.database  # type: ignore[no-any-return]


def _record(job: Job, started: float, status_code: int | None, error: str | None) -> None:
    latency_ms = int((time.perf_counter() - started) * 1000)
    _database().execute(
        INSERT_ATTEMPT,
        (job["delivery_id"], job["event_id"], time.time(), status_code, latency_ms, error),
    )


@app.task(
    name=TASK_NAME,
    autoretry_for=(requests.RequestException, DeliveryFailed),
    retry_backoff=True,
    retry_backoff_max=RETRY_MAX_SECONDS,
    retry_jitter=True,
    max_retries=MAX_RETRIES,
)
def deliver(job: Job) -> None:
    """POST one signed delivery; raise so Celery retries it with backoff when it fails."""
    body = job["body"].encode()
    headers = signed_headers(job["event_id"], job["delivery_id"], body)
    started = time.perf_counter()
    try:
        response = _session().post(
            job["url"], data=body, headers=headers, timeout=request_timeout()
        )
    except requests.RequestException as error:
        _record(job, started, None, f"{type(error).__name__}: {error}"[:500])
        raise
    _record(job, started, response.status_code, None)
    if not 200 <= response.status_code < 300:
        raise DeliveryFailed(f"endpoint returned {response.status_code} for {job['delivery_id']}")
