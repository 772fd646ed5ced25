"""Server-side idempotency keys, against the real service on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import httpx
import pytest
from fastapi.responses import JSONResponse
from sqlalchemy import Engine, insert, select

import wp_llm
from tests.conftest import Account
from tests.sdk.conftest import EXAMPLE_URL
from tests.support.receiver import Receiver, Reply
from tests.support.service import ServiceProcess, serve_in_thread
from wp_llm.server.api.app import create_app
from wp_llm.server.api.idempotency import KEY_TTL_SECONDS, MAX_KEY_LENGTH, hash_request
from wp_llm.server.config import Settings
from wp_llm.server.db.engine import create_db_engine, migrate
from wp_llm.server.db.schema import idempotency_keys
from wp_llm.server.store import accounts
from wp_llm.server.store.commit_check import CommitCheckFailed

WEBHOOK_BODY = {"url": EXAMPLE_URL, "events": ["*"]}
# In a flaky route's plan: fail as a publish whose commit could not be checked.
COMMIT_UNKNOWN = -1


@pytest.fixture
def engine(service: ServiceProcess) -> Iterator[Engine]:
    """The shared service's database, for looking at stored keys."""
    database = create_db_engine(service.database_url)
    yield database
    database.dispose()


def account_id_of(engine: Engine, key: str) -> str:
    account_id = accounts.authenticate(engine, key).account_id
    assert account_id is not None
    return account_id


def post_webhook(
    account: Account,
    key: str,
    body: Mapping[str, object] | None = None,
    client: httpx.Client | None = None,
) -> httpx.Response:
    http = client or account.client
    return http.post("/v1/webhooks", json=body or WEBHOOK_BODY, headers={"Idempotency-Key": key})


def webhook_count(account: Account) -> int:
    return len(account.client.get("/v1/webhooks", params={"limit": 100}).json()["data"])


def insert_key_row(
    engine: Engine,
    scope: str,
    key: str,
    *,
    created: int,
    status_code: int,
    request_hash: str = "0" * 64,
) -> None:
    row = {
        "scope": scope,
        "key": key,
        "request_hash": request_hash,
        "status_code": status_code,
        "response_body": b"",
        "created": created,
    }
    with engine.begin() as connection:
        connection.execute(insert(idempotency_keys).values(**row))


def stored_rows(engine: Engine, key: str) -> list[tuple[int, bytes]]:
    query = select(idempotency_keys.c.status_code, idempotency_keys.c.response_body).where(
        idempotency_keys.c.key == key
    )
    with engine.connect() as connection:
        return [(row[0], bytes(row[1])) for row in connection.execute(query)]


def test_idempotency_replays_first_response(account: Account) -> None:
    key = str(uuid.uuid4())

    first = post_webhook(account, key)
    second = post_webhook(account, key)

    assert first.status_code == 201
    assert "idempotent-replayed" not in first.headers
    assert second.status_code == 201
    assert second.headers["idempotent-replayed"] == "true"
    assert second.json() == first.json()
    assert second.headers["x-request-id"].startswith("req_")
    assert webhook_count(account) == 1


def test_idempotency_replays_client_errors(account: Account) -> None:
    key = str(uuid.uuid4())
    body = {"url": "ftp://example.com", "events": ["*"]}

    first = post_webhook(account, key, body)
    second = post_webhook(account, key, body)

    assert first.status_code == 400
    assert second.status_code == 400
    assert second.headers["idempotent-replayed"] == "true"
    assert second.json()["error"]["code"] == first.json()["error"]["code"]


def test_idempotency_key_reused_with_other_body_conflicts(account: Account) -> None:
    key = str(uuid.uuid4())
    post_webhook(account, key)

    reused = post_webhook(account, key, {"url": EXAMPLE_URL + "/other", "events": ["*"]})

    assert reused.status_code == 409
    error = reused.json()["error"]
    assert error["type"] == "resource_error"
    assert error["code"] == "idempotency_key_reused"
    assert error["details"]["field"] == "Idempotency-Key"
    assert error["request_id"].startswith("req_")
    assert webhook_count(account) == 1


def test_idempotency_key_reused_on_other_path_conflicts(account: Account) -> None:
    key = str(uuid.uuid4())
    webhook_id = post_webhook(account, key).json()["id"]

    reused = account.client.post(
        f"/v1/webhooks/{webhook_id}", json=WEBHOOK_BODY, headers={"Idempotency-Key": key}
    )

    assert reused.status_code == 409
    assert reused.json()["error"]["code"] == "idempotency_key_reused"


def test_idempotency_key_too_long_rejected(account: Account) -> None:
    response = post_webhook(account, "k" * (MAX_KEY_LENGTH + 1))

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "validation_error"
    assert error["details"]["field"] == "Idempotency-Key"
    assert "Idempotency-Key" in error["message"]
    assert webhook_count(account) == 0


def test_idempotency_key_of_max_length_accepted(account: Account) -> None:
    assert post_webhook(account, "k" * MAX_KEY_LENGTH).status_code == 201


def test_idempotency_key_empty_rejected(account: Account) -> None:
    response = post_webhook(account, "")

    assert response.status_code == 400
    assert response.json()["error"]["details"]["field"] == "Idempotency-Key"


def test_requests_without_key_are_not_deduplicated(account: Account) -> None:
    account.client.post("/v1/webhooks", json=WEBHOOK_BODY)
    account.client.post("/v1/webhooks", json=WEBHOOK_BODY)

    assert webhook_count(account) == 2


def test_idempotency_key_ignored_on_get(account: Account) -> None:
    headers = {"Idempotency-Key": str(uuid.uuid4())}
    account.client.get("/v1/webhooks", headers=headers)
    post_webhook(account, str(uuid.uuid4()))

    second = account.client.get("/v1/webhooks", headers=headers)

    assert "idempotent-replayed" not in second.headers
    assert len(second.json()["data"]) == 1


def test_idempotency_keys_are_scoped_per_account(account: Account, service: ServiceProcess) -> None:
    key = str(uuid.uuid4())
    other_key = service.create_key()

    with service.client(other_key) as other_client:
        other = other_client.post(
            "/v1/webhooks", json=WEBHOOK_BODY, headers={"Idempotency-Key": key}
        )
    mine = post_webhook(account, key)

    assert other.status_code == 201
    assert mine.status_code == 201
    assert "idempotent-replayed" not in mine.headers
    assert mine.json()["id"] != other.json()["id"]


def test_idempotency_unauthenticated_request_stores_nothing(
    service: ServiceProcess, engine: Engine
) -> None:
    key = str(uuid.uuid4())

    with service.client("wpllm_sk_wrong") as client:
        response = client.post("/v1/webhooks", json=WEBHOOK_BODY, headers={"Idempotency-Key": key})

    assert response.status_code == 401
    assert stored_rows(engine, key) == []


def test_idempotency_stored_body_is_encrypted(account: Account, engine: Engine) -> None:
    key = str(uuid.uuid4())

    secret = post_webhook(account, key).json()["secret"]

    [(status_code, body)] = stored_rows(engine, key)
    assert status_code == 201
    assert secret.encode() not in body


def post_concurrently(account: Account, key: str, count: int) -> list[httpx.Response]:
    """Send `count` identical keyed requests at the same moment, each on its own connection."""
    barrier = threading.Barrier(count)
    responses: list[httpx.Response] = []

    def send() -> None:
        with account.service.client(account.key) as client:
            barrier.wait()
            responses.append(post_webhook(account, key, client=client))

    threads = [threading.Thread(target=send) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return responses


def test_concurrent_identical_requests_create_one_webhook(account: Account) -> None:
    rounds = 5
    for _ in range(rounds):
        responses = post_concurrently(account, str(uuid.uuid4()), count=2)

        statuses = sorted(response.status_code for response in responses)
        assert len(statuses) == 2
        assert statuses[0] == 201
        assert statuses[1] in {201, 409}
        conflicts = [r.json()["error"]["code"] for r in responses if r.status_code == 409]
        assert set(conflicts) <= {"idempotency_request_in_progress"}
        created_ids = {r.json()["id"] for r in responses if r.status_code == 201}
        assert len(created_ids) == 1
    assert webhook_count(account) == rounds


def run_in_thread(function: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    results: list[object] = []
    thread = threading.Thread(target=lambda: results.append(function()))
    thread.start()
    return thread, results


def test_idempotency_request_in_progress_conflicts(account: Account, receiver: Receiver) -> None:
    receiver.reply_with(Reply(status=200, delay=1.5))
    webhook_id = post_webhook(
        account, str(uuid.uuid4()), {"url": receiver.url, "events": ["*"]}
    ).json()["id"]
    key = str(uuid.uuid4())

    def send_test() -> httpx.Response:
        with account.service.client(account.key) as client:
            return client.post(
                f"/v1/webhooks/{webhook_id}/test", json={}, headers={"Idempotency-Key": key}
            )

    thread, results = run_in_thread(send_test)
    receiver.wait_for(1)
    during = send_test()
    thread.join(timeout=30)
    after = send_test()

    assert during.status_code == 409
    assert during.json()["error"]["code"] == "idempotency_request_in_progress"
    assert during.headers["retry-after"] == "1"
    [first] = results
    assert isinstance(first, httpx.Response)
    assert after.headers["idempotent-replayed"] == "true"
    assert after.json()["event"]["id"] == first.json()["event"]["id"]
    assert len(receiver.requests) == 1


def test_sdk_retry_waits_out_request_in_progress(account: Account, receiver: Receiver) -> None:
    receiver.reply_with(Reply(status=200, delay=1.0))
    base_url = account.service.base_url
    with wp_llm.Client(account.key, base_url=base_url, max_retries=3) as client:
        webhook = client.webhooks.create(url=receiver.url, events=["*"])
        key = str(uuid.uuid4())

        thread, results = run_in_thread(
            lambda: client.webhooks.test(webhook.id, idempotency_key=key)
        )
        receiver.wait_for(1)
        second = client.webhooks.test(webhook.id, idempotency_key=key)
        thread.join(timeout=30)

    [first] = results
    assert isinstance(first, wp_llm.WebhookTestResult)
    assert second.event.id == first.event.id
    assert len(receiver.requests) == 1


def test_idempotency_expired_row_is_overwritten(account: Account, engine: Engine) -> None:
    key = str(uuid.uuid4())
    scope = account_id_of(engine, account.key)
    insert_key_row(
        engine, scope, key, created=int(time.time()) - KEY_TTL_SECONDS - 60, status_code=201
    )

    response = post_webhook(account, key)

    assert response.status_code == 201
    assert "idempotent-replayed" not in response.headers
    assert [status for status, _ in stored_rows(engine, key)] == [201]


def test_idempotency_abandoned_claim_is_taken_over(account: Account, engine: Engine) -> None:
    key = str(uuid.uuid4())
    scope = account_id_of(engine, account.key)
    # A claim in progress for ten minutes: its process died before storing a response.
    insert_key_row(engine, scope, key, created=int(time.time()) - 600, status_code=0)

    response = post_webhook(account, key)

    assert response.status_code == 201
    assert webhook_count(account) == 1


def test_idempotency_recent_claim_still_conflicts(account: Account, engine: Engine) -> None:
    key = str(uuid.uuid4())
    body = json.dumps(WEBHOOK_BODY).encode()
    insert_key_row(
        engine,
        account_id_of(engine, account.key),
        key,
        created=int(time.time()) - 5,
        status_code=0,
        request_hash=hash_request("POST", b"/v1/webhooks", body),
    )

    response = account.client.post(
        "/v1/webhooks",
        content=body,
        headers={"Idempotency-Key": key, "Content-Type": "application/json"},
    )

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_request_in_progress"


def test_idempotency_purges_expired_rows(
    make_service: Callable[..., ServiceProcess], database_url: str
) -> None:
    service = make_service()
    key = service.create_key()
    database = create_db_engine(database_url)
    try:
        scope = account_id_of(database, key)
        insert_key_row(
            database,
            scope,
            "old-key",
            created=int(time.time()) - KEY_TTL_SECONDS - 1,
            status_code=201,
        )

        # The first keyed request of a fresh process runs the purge after its response.
        with service.client(key) as client:
            client.post("/v1/webhooks", json=WEBHOOK_BODY, headers={"Idempotency-Key": "new-key"})
        deadline = time.monotonic() + 5
        while stored_rows(database, "old-key") and time.monotonic() < deadline:
            time.sleep(0.05)

        assert stored_rows(database, "old-key") == []
        assert len(stored_rows(database, "new-key")) == 1
    finally:
        database.dispose()


@pytest.fixture
def flaky_app(
    database_url: str, tmp_path: Path
) -> Iterator[tuple[Callable[[], httpx.Response], list[int]]]:
    """The real API served in this process, with an extra route that fails as `plan` requests."""
    database = create_db_engine(database_url)
    migrate(database)
    token = accounts.create_key(
        database, account_id=accounts.ensure_account(database, "flaky"), name="flaky"
    ).token
    database.dispose()
    app = create_app(Settings(database_url=database_url, data_dir=tmp_path, run_worker=False))
    plan: list[int] = []

    @app.post("/v1/flaky", status_code=201)
    def flaky() -> JSONResponse:
        status = plan.pop(0) if plan else 201
        if status == 0:
            raise RuntimeError("the route crashed")
        if status == COMMIT_UNKNOWN:
            raise CommitCheckFailed("The commit may have gone through.")
        return JSONResponse({"status": status}, status_code=status)

    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "retry-me"}
    with serve_in_thread(app) as base_url:

        def post() -> httpx.Response:
            # A new connection each time: uvicorn closes the connection after a route raised.
            return httpx.post(base_url + "/v1/flaky", json={}, headers=headers)

        yield post, plan


@pytest.mark.parametrize(
    "first_status",
    [
        500,
        503,
        429,  # a rate limit or quota: the retry must run again once the wait is over
        0,  # the route raises, and the service responds with 500
    ],
)
def test_idempotency_transient_failure_is_not_stored(
    flaky_app: tuple[Callable[[], httpx.Response], list[int]], first_status: int
) -> None:
    post, plan = flaky_app
    plan.append(first_status)

    first = post()
    second = post()

    assert first.status_code == (first_status or 500)
    assert second.status_code == 201
    assert "idempotent-replayed" not in second.headers


def test_idempotency_keeps_unknown_commit_outcome(
    flaky_app: tuple[Callable[[], httpx.Response], list[int]],
) -> None:
    post, plan = flaky_app
    plan.append(COMMIT_UNKNOWN)

    first = post()
    second = post()

    assert first.status_code == 503
    assert first.json()["error"]["code"] == "commit_outcome_unknown"
    # The writes may be stored, so a retry with the key must not run them again.
    assert second.status_code == 503
    assert second.headers["idempotent-replayed"] == "true"
    assert second.json() == first.json()
