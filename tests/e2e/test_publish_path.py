"""`POST /v1/events` responds the same through its direct path as through the FastAPI route.

Two copies of the real API run in this process on one database: the service as shipped,
and one without the direct path, where every publish goes through the route. Each request
goes to both, and the responses must agree in status, error envelope and headers.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, func, select

from tests.support.service import serve_in_thread
from wp_llm import catalog
from wp_llm.server.api.app import create_app
from wp_llm.server.api.publish_path import (
    MAX_DIRECT_BYTES,
    PublishPathMiddleware,
    simple_event,
)
from wp_llm.server.config import Settings
from wp_llm.server.db.schema import events
from wp_llm.server.store import accounts
from wp_llm.server.store import usage as usage_store
from wp_llm.server.store.commit_check import CommitCheckFailed

EVENT_QUOTA = 40
EVENT_TYPE = "generation.completed"
GOOD_DATA = dict(catalog.EVENT_TYPES[EVENT_TYPE].example)
# Headers whose values differ between any two requests: only their presence is compared.
# The two copies may share one rate-limit bucket per key (PostgreSQL), so the token count
# depends on the order the requests land in.
VARYING_HEADERS = {
    "date",
    "x-request-id",
    "content-length",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
}


@dataclass
class Keys:
    account: str
    other_account: str
    service: str
    other_account_id: str


@dataclass
class Pair:
    """The shipped API and one without the direct path, on the same database."""

    direct: str
    routed: str
    keys: Keys
    engine: Engine


@pytest.fixture
def pair(migrated_engine: Engine, database_url: str, tmp_path: Path) -> Iterator[Pair]:
    account_id = accounts.ensure_account(migrated_engine, "publisher")
    other_id = accounts.ensure_account(migrated_engine, "someone-else")
    keys = Keys(
        account=accounts.create_key(migrated_engine, account_id=account_id).token,
        other_account=accounts.create_key(migrated_engine, account_id=other_id).token,
        service=accounts.create_key(migrated_engine, account_id=None, kind="service").token,
        other_account_id=other_id,
    )
    settings = Settings(
        database_url=database_url,
        data_dir=tmp_path,
        run_worker=False,
        auth_cache_seconds=0,
        event_quota=EVENT_QUOTA,
    )
    direct = create_app(settings)
    routed = create_app(settings)
    routed.user_middleware = [
        middleware
        for middleware in routed.user_middleware
        if middleware.cls is not PublishPathMiddleware
    ]
    assert len(routed.user_middleware) == len(direct.user_middleware) - 1
    with serve_in_thread(direct) as direct_url, serve_in_thread(routed) as routed_url:
        yield Pair(direct_url + "/v1/events", routed_url + "/v1/events", keys, migrated_engine)


def stored_events(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(events)).scalar_one())


def post(
    url: str, key: str | None, content: bytes, content_type: str = "application/json"
) -> httpx.Response:
    headers = {"content-type": content_type}
    if key is not None:
        headers["authorization"] = f"Bearer {key}"
    return httpx.post(url, content=content, headers=headers)


def comparable(response: httpx.Response) -> dict[str, Any]:
    """Return what must agree between the two paths: status, headers, body minus its ids."""
    headers = {
        name: "*" if name in VARYING_HEADERS else value for name, value in response.headers.items()
    }
    document = response.json()
    if "error" in document:
        error = dict(document["error"])
        assert error.pop("request_id") == response.headers["x-request-id"]
        assert abs(error.pop("timestamp") - time.time()) < 60
        return {"status": response.status_code, "headers": headers, "error": error}
    assert document["id"].startswith("evt_")
    shape = {name: value for name, value in document.items() if name not in {"id", "created"}}
    return {"status": response.status_code, "headers": headers, "event": shape}


def body(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


def requests(keys: Keys) -> list[tuple[str, str | None, bytes]]:
    """Return (case, the key it sends, the body) for each request both paths get."""
    good = {"type": EVENT_TYPE, "data": GOOD_DATA}
    return [
        ("a good event", keys.account, body(**good)),
        ("its own account named", keys.account, body(**good, account="publisher")),
        ("an explicit null account", keys.account, body(**good, account=None)),
        ("a service key naming the account", keys.service, body(**good, account="publisher")),
        ("no key", None, body(**good)),
        ("an unknown key", "wpk_nobody", body(**good)),
        ("another account named", keys.account, body(**good, account=keys.other_account_id)),
        ("a service key naming no account", keys.service, body(**good)),
        ("a service key naming no such account", keys.service, body(**good, account="ghost")),
        ("a service key naming an empty account", keys.service, body(**good, account="")),
        ("an unknown type", keys.account, body(type="generation.exploded", data={})),
        ("data that breaks the schema", keys.account, body(type=EVENT_TYPE, data={"id": 1})),
        ("a NUL in the data", keys.account, body(type=EVENT_TYPE, data={"id": "a\u0000b"})),
        ("an unsafe integer", keys.account, body(type=EVENT_TYPE, data={"n": 2**60})),
        ("an unknown field", keys.account, body(**good, colour="red")),
        ("a number as the type", keys.account, body(type=5, data=GOOD_DATA)),
        ("a list as the data", keys.account, body(type=EVENT_TYPE, data=[])),
        ("a number as the account", keys.account, body(**good, account=7)),
        ("no data", keys.account, body(type=EVENT_TYPE)),
        ("a list body", keys.account, b"[]"),
        ("a broken body", keys.account, b'{"type": '),
        ("an empty body", keys.account, b""),
        ("bytes that are not UTF-8", keys.account, b"\xff\xfe"),
        ("NaN in the data", keys.account, b'{"type": "system.update", "data": {"v": NaN}}'),
        ("nesting past the parser", keys.account, b'{"type": "x", "data": ' + b"[" * 5000),
    ]


def test_both_paths_respond_alike(pair: Pair) -> None:
    for case, key, content in requests(pair.keys):
        direct = comparable(post(pair.direct, key, content))
        routed = comparable(post(pair.routed, key, content))
        assert direct == routed, case


@pytest.mark.parametrize(
    "content_type",
    ["application/vnd.example+json", "application/json; charset=utf-8", "text/plain+json"],
)
def test_content_types_respond_alike(pair: Pair, content_type: str) -> None:
    content = body(type=EVENT_TYPE, data=GOOD_DATA)

    direct = comparable(post(pair.direct, pair.keys.account, content, content_type))
    routed = comparable(post(pair.routed, pair.keys.account, content, content_type))

    assert direct == routed


def test_large_event_responds_alike(pair: Pair) -> None:
    data = {**GOOD_DATA, "completion": "x" * (MAX_DIRECT_BYTES + 1)}
    content = body(type=EVENT_TYPE, data=data)

    direct = comparable(post(pair.direct, pair.keys.account, content))
    routed = comparable(post(pair.routed, pair.keys.account, content))

    assert direct == routed
    assert direct["status"] == 201


@pytest.mark.parametrize("query", ["colour=red", "type=system.update"])
def test_query_string_responds_alike(pair: Pair, query: str) -> None:
    content = body(type=EVENT_TYPE, data=GOOD_DATA)

    direct = comparable(post(f"{pair.direct}?{query}", pair.keys.account, content))
    routed = comparable(post(f"{pair.routed}?{query}", pair.keys.account, content))

    assert direct == routed
    assert direct["status"] == 400
    assert direct["error"]["code"] == "unknown_parameter"
    assert direct["error"]["details"]["field"] == query.split("=")[0]


def test_query_without_names_publishes_alike(pair: Pair) -> None:
    content = body(type=EVENT_TYPE, data=GOOD_DATA)

    direct = comparable(post(f"{pair.direct}?&", pair.keys.account, content))
    routed = comparable(post(f"{pair.routed}?&", pair.keys.account, content))

    assert direct == routed
    assert direct["status"] == 201


def test_both_paths_store_alike(pair: Pair) -> None:
    cases = requests(pair.keys)
    before = stored_events(pair.engine)
    statuses = [post(pair.direct, key, content).status_code for _, key, content in cases]
    stored = stored_events(pair.engine) - before
    assert statuses[:4] == [201] * 4
    assert stored == statuses.count(201) == 4


def test_over_quota_responds_alike(pair: Pair) -> None:
    content = body(type=EVENT_TYPE, data=GOOD_DATA)
    for _ in range(EVENT_QUOTA):
        assert post(pair.direct, pair.keys.other_account, content).status_code == 201

    direct = comparable(post(pair.direct, pair.keys.other_account, content))
    routed = comparable(post(pair.routed, pair.keys.other_account, content))

    # Seconds until the quota period ends: the two requests may fall either side of a second.
    waits = [int(response["headers"].pop("retry-after")) for response in (direct, routed)]
    assert abs(waits[0] - waits[1]) <= 1
    assert direct == routed
    assert direct["status"] == 429
    assert direct["error"]["code"] == "quota_exceeded"


def test_unknown_commit_outcome_responds_alike(pair: Pair, monkeypatch: pytest.MonkeyPatch) -> None:
    """A publish whose COMMIT reply was lost, with the database then out of reach: 503."""

    def lost_and_unchecked(
        engine: Engine, group: list[usage_store.GroupedPublish], **options: Any
    ) -> list[Exception]:
        return [CommitCheckFailed("lost", details={"event_id": "evt_lost"})] * len(group)

    # The database cannot be made unreachable between COMMIT and the check on cue here;
    # tests/usage/test_pipelined_publish.py does that below the API.
    monkeypatch.setattr(usage_store, "publish_metered_group", lost_and_unchecked)
    content = body(type=EVENT_TYPE, data=GOOD_DATA)

    direct = post(pair.direct, pair.keys.account, content)
    routed = post(pair.routed, pair.keys.account, content)

    assert comparable(direct) == comparable(routed)
    assert direct.status_code == 503
    assert direct.json()["error"]["code"] == "commit_outcome_unknown"
    # No Retry-After: a blind retry would store the events twice if the COMMIT went through.
    assert "retry-after" not in direct.headers


def test_direct_path_accepted_bodies() -> None:
    assert simple_event(body(type=EVENT_TYPE, data={"a": [1, {"b": None}]})) == (
        EVENT_TYPE,
        {"a": [1, {"b": None}]},
        None,
    )
    assert simple_event(body(type=EVENT_TYPE, data={}, account="acme")) == (
        EVENT_TYPE,
        {},
        "acme",
    )
    for rejected in (
        b"",
        b"null",
        b'{"type": "x"}',
        body(type=EVENT_TYPE, data={}, extra=1),
        body(type=EVENT_TYPE, data={"s": "\ud83d"}),
        body(type=EVENT_TYPE, data={"k\u0000": 1}),
        b'{"type": "system.update", "data": {"v": Infinity}}',
        b'{"type": "system.update", "data": ' + b'{"a": ' * 200 + b"1" + b"}" * 201,
    ):
        assert simple_event(rejected) is None, rejected
