"""Every bad input gets the error envelope with a 4xx that names the field; never a 500."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import httpx
import pytest

from tests.conftest import Account
from tests.e2e.helpers import assert_error, create_webhook
from tests.support.receiver import Receiver

# (body, the field the error must name)
BAD_WEBHOOKS = [
    ({"events": ["*"]}, "url"),
    ({"url": "ftp://example.com/hook", "events": ["*"]}, "url"),
    ({"url": "http://", "events": ["*"]}, "url"),
    ({"url": "https://example.com/" + "a" * 3000, "events": ["*"]}, "url"),
    ({"url": "https://example.com/hook"}, "events"),
    ({"url": "https://example.com/hook", "events": []}, "events"),
    ({"url": "https://example.com/hook", "events": "generation.completed"}, "events"),
    (
        {"url": "https://example.com/hook", "events": ["*"], "colour": "red"},
        "colour",
    ),  # unknown field
    ({"url": "https://example.com/hook", "events": ["*"], "secret": "short"}, "secret"),
    ({"url": "https://example.com/hook", "events": ["*"], "description": 5}, "description"),
    ({"url": "https://example.com/hook", "events": ["*"], "enabled": "maybe"}, "enabled"),
]


@pytest.mark.parametrize(("body", "field"), BAD_WEBHOOKS)
def test_bad_webhook_is_rejected(account: Account, body: dict[str, Any], field: str) -> None:
    assert_error(account.client.post("/v1/webhooks", json=body), 400, "validation_error", field)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:0/hook", "http://[::1]:0/hook", "http://127.0.0.1:99999/hook"]
)
def test_webhook_url_invalid_port_rejected(account: Account, url: str) -> None:
    response = account.client.post("/v1/webhooks", json={"url": url, "events": ["*"]})

    error = assert_error(response, 400, "validation_error", "url")
    assert error["code"] == "invalid_url"
    assert "port" in error["message"]


def test_webhook_update_port_zero_rejected(account: Account) -> None:
    webhook = create_webhook(account.client, "http://127.0.0.1:9/hook")
    path = f"/v1/webhooks/{webhook['id']}"

    response = account.client.patch(path, json={"url": "http://127.0.0.1:0/hook"})

    error = assert_error(response, 400, "validation_error", "url")
    assert error["code"] == "invalid_url"
    assert "port '0'" in error["message"]
    assert account.client.get(path).json()["url"] == "http://127.0.0.1:9/hook"


def test_metadata_url_error_names_allowed_networks(account: Account) -> None:
    response = account.client.post(
        "/v1/webhooks", json={"url": "http://169.254.169.254/latest", "events": ["*"]}
    )

    error = assert_error(response, 400, "validation_error", "url")
    assert error["code"] == "url_not_allowed"
    assert "even with --allow-private-networks" in error["message"]
    assert "WP_LLM_ALLOWED_NETWORKS" in error["message"]


def test_unknown_event_type_lists_valid_ones(account: Account) -> None:
    response = account.client.post(
        "/v1/webhooks",
        json={"url": "https://example.com/hook", "events": ["generation.*", "generation.done"]},
    )
    error = assert_error(response, 400, "validation_error", "events[1]")
    assert "generation.completed" in error["details"]["valid"]
    assert error["code"] == "unknown_event_type"


@pytest.mark.parametrize("content", [b"{", b"[]", b"null", b'{"url": 1}', b"\xff\xfe"])
def test_malformed_body_is_rejected(account: Account, content: bytes) -> None:
    response = account.client.post(
        "/v1/webhooks", content=content, headers={"content-type": "application/json"}
    )
    assert_error(response, 400, "validation_error")


def test_event_data_breaking_schema_is_422(account: Account) -> None:
    response = account.client.post(
        "/v1/events",
        json={
            "type": "generation.completed",
            "data": {
                "id": "g",
                "object": "text_generation",
                "created": 1,
                "model": "m",
                "prompt": "p",
            },
        },
    )
    error = assert_error(response, 422, "validation_error", "data.completion")
    assert "completion" in error["message"]


def test_event_of_unknown_type_is_400(account: Account) -> None:
    response = account.client.post("/v1/events", json={"type": "generation.exploded", "data": {}})
    error = assert_error(response, 400, "validation_error", "type")
    assert len(error["details"]["valid"]) >= 13


@pytest.mark.parametrize("number", [b"NaN", b"Infinity", b"-Infinity"])
def test_event_data_with_nan_is_rejected(account: Account, number: bytes) -> None:
    content = (
        b'{"type": "usage.limit_exceeded", "data": '
        b'{"limit": ' + number + b', "current_usage": 1, "reset_time": 1, "retry_after": 1}}'
    )
    response = account.client.post(
        "/v1/events", content=content, headers={"content-type": "application/json"}
    )
    error = assert_error(response, 400, "validation_error", "data.limit")
    assert "NaN or infinite" in error["message"]
    assert account.client.get("/v1/events").json()["data"] == []


def nested(levels: int) -> bytes:
    """Return a publish body whose data nests `levels` objects, `data` itself included."""
    return (
        b'{"type": "system.update", "data": '
        + b'{"a": ' * (levels - 1)
        + b"{}"
        + b"}" * (levels - 1)
        + b"}"
    )


def test_data_at_depth_limit_reaches_schema(account: Account) -> None:
    response = account.client.post(
        "/v1/events", content=nested(199), headers={"content-type": "application/json"}
    )
    # The schema of system.update requires fields, so the data reaches the schema check.
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_event_data"


def test_too_deep_data_names_field(account: Account) -> None:
    response = account.client.post(
        "/v1/events", content=nested(200), headers={"content-type": "application/json"}
    )
    error = assert_error(response, 400, "validation_error", "data" + ".a" * 199)
    assert "199 levels" in error["message"]


@pytest.mark.parametrize(
    "content",
    [
        b'{"type": "system.update", "data": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        '{"type": "system.update", "data": {"text": "caf\u00e9"}}'.encode("latin-1"),
    ],
)
def test_unreadable_body_names_body(account: Account, content: bytes) -> None:
    response = account.client.post(
        "/v1/events", content=content, headers={"content-type": "application/json"}
    )
    error = assert_error(response, 400, "validation_error", "body")
    assert "UTF-8" in error["message"]


@pytest.mark.parametrize(
    "content_types",
    [["text/plain+json"], ["json"], ["application/x/y+json"], ["text/plain", "application/json"]],
)
def test_publish_rejects_other_json_types(account: Account, content_types: list[str]) -> None:
    body = json.dumps({"type": "system.update", "data": {}}).encode()
    headers = [("authorization", f"Bearer {account.key}")]
    headers += [("content-type", content_type) for content_type in content_types]
    for path in ("/v1/events", "/v1/events/batch"):
        response = httpx.post(account.service.base_url + path, content=body, headers=headers)
        assert_error(response, 415, "validation_error", "Content-Type")
    assert account.client.get("/v1/events").json()["data"] == []


def test_vendor_json_content_type_is_read(account: Account) -> None:
    response = account.client.post(
        "/v1/events",
        content=json.dumps({"type": "generation.exploded", "data": {}}).encode(),
        headers={"content-type": "application/vnd.example+json; charset=utf-8"},
    )
    # The body was read as JSON, so the type check names the unknown type.
    assert_error(response, 400, "validation_error", "type")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"starting_after": "a", "ending_before": "b"}, "ending_before"),
    ],
)
def test_bad_list_parameters_are_rejected(
    account: Account, params: dict[str, Any], field: str
) -> None:
    assert_error(account.client.get("/v1/webhooks", params=params), 400, "validation_error", field)


def test_bad_status_filter_is_rejected(account: Account) -> None:
    assert_error(
        account.client.get("/v1/deliveries", params={"status": "lost"}),
        400,
        "validation_error",
        "status",
    )


@pytest.mark.parametrize(
    "path", ["/v1/webhooks/webhook_nope", "/v1/events/evt_nope", "/v1/deliveries/dlv_nope"]
)
def test_unknown_ids_are_404(account: Account, path: str) -> None:
    assert_error(account.client.get(path), 404, "resource_error", "id")


def test_unknown_route_is_404_envelope(account: Account) -> None:
    assert_error(account.client.get("/v1/nothing"), 404, "resource_error")


def test_wrong_method_is_405_envelope(account: Account) -> None:
    assert_error(account.client.put("/v1/webhooks"), 405, "validation_error")


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer  x y"},
    ],
)
def test_bad_credentials_are_401(account: Account, headers: dict[str, str]) -> None:
    with httpx.Client(base_url=account.service.base_url, headers=headers) as anonymous:
        assert_error(anonymous.get("/v1/webhooks"), 401, "authentication_error")


def test_null_for_required_update_field_is_rejected(account: Account, receiver: Receiver) -> None:
    webhook = create_webhook(account.client, receiver.url)
    response = account.client.patch(f"/v1/webhooks/{webhook['id']}", json={"url": None})
    assert_error(response, 400, "validation_error", "url")


def test_test_endpoint_rejects_unknown_type(account: Account, receiver: Receiver) -> None:
    webhook = create_webhook(account.client, receiver.url)
    response = account.client.post(f"/v1/webhooks/{webhook['id']}/test", json={"type": "nope"})
    assert_error(response, 400, "validation_error")


# Targets that a default service refuses: loopback, private, link-local (metadata), IPv6 loopback.
BLOCKED_URLS = [
    "http://127.0.0.1/hook",
    "http://10.0.0.5/hook",
    "http://169.254.169.254/latest/meta-data",
    "http://[::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://0.0.0.0/hook",
]


@pytest.mark.parametrize("url", BLOCKED_URLS)
def test_private_targets_are_refused_by_default(make_service, url: str) -> None:  # type: ignore[no-untyped-def]
    service = make_service(env={"WP_LLM_ALLOW_PRIVATE_NETWORKS": "0"})
    with service.client(service.create_key()) as client:
        response = client.post("/v1/webhooks", json={"url": url, "events": ["*"]})
    error = assert_error(response, 400, "validation_error", "url")
    assert error["code"] == "url_not_allowed"


GENERATION = {
    "id": "g",
    "object": "text_generation",
    "created": 1,
    "model": "m",
    "prompt": "p",
    "completion": "c",
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    "finish_reason": "stop",
}

# (raw JSON of extra data fields, the field the error must name)
UNSTORABLE_DATA = [
    (r'{"note": "\ud83d"}', "data.note"),  # an unpaired surrogate is not Unicode text
    (r'{"note": {"\udc00": 1}}', r"data.note.\udc00"),  # also not as an object key
    (r'{"note": {"a\u0000b": 1}}', r"data.note.a\u0000b"),  # a key, named with escapes
    (r'{"note": {"caf\u00e9\u0000": 1}}', r"data.note.café\u0000"),  # only bad ones escaped
    (r'{"nested": [1, {"zero": "a\u0000b"}]}', "data.nested[1].zero"),  # NUL
    ('{"counter": 9007199254740993}', "data.counter"),  # beyond 2**53 - 1
    ('{"counter": -100000000000000000000}', "data.counter"),
]


@pytest.mark.parametrize(("extra", "field"), UNSTORABLE_DATA)
def test_unstorable_event_data_is_rejected(account: Account, extra: str, field: str) -> None:
    data = json.dumps(GENERATION)[:-1] + ", " + extra[1:]
    content = f'{{"type": "generation.completed", "data": {data}}}'.encode()
    response = account.client.post(
        "/v1/events", content=content, headers={"content-type": "application/json"}
    )
    assert_error(response, 400, "validation_error", field)
    assert account.client.get("/v1/events").status_code == 200


def test_nul_in_webhook_description_is_rejected(account: Account, receiver: Receiver) -> None:
    url = receiver.url.replace("http://", "http://alice:TopSecretPw42@")
    response = account.client.post(
        "/v1/webhooks", json={"url": url, "events": ["*"], "description": "x\u0000"}
    )
    assert_error(response, 400, "validation_error", "description")
    assert "TopSecretPw42" not in account.service.log_path.read_text(errors="replace")


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/v1/webhooks/%00", "path"),
        ("/v1/events/evt_%00", "path"),
        ("/v1/deliveries?starting_after=%00", "starting_after"),
        ("/v1/events?type=a%00b", "type"),
    ],
)
def test_nul_in_url_is_rejected(account: Account, path: str, field: str) -> None:
    assert_error(account.client.get(path), 400, "validation_error", field)


def test_oversized_body_is_413(account: Account) -> None:
    data = {**GENERATION, "completion": "x" * (1024 * 1024)}
    response = account.client.post(
        "/v1/events", json={"type": "generation.completed", "data": data}
    )
    error = assert_error(response, 413, "validation_error", "body")
    assert error["code"] == "request_too_large"


def test_non_json_content_type_is_415(account: Account) -> None:
    response = account.client.post(
        "/v1/webhooks",
        content=b'{"url": "https://example.com/hook", "events": ["*"]}',
        headers={"content-type": "text/plain"},
    )
    assert_error(response, 415, "validation_error", "Content-Type")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"enabled": "yes"}, "enabled"),  # strings are not booleans
        ({"max_concurrency": True}, "max_concurrency"),  # booleans are not numbers
        ({"events": ["*", 5]}, "events[1]"),
    ],
)
def test_loosely_typed_values_are_rejected(
    account: Account, body: dict[str, Any], field: str
) -> None:
    full = {"url": "https://example.com/hook", "events": ["*"], **body}
    assert_error(account.client.post("/v1/webhooks", json=full), 400, "validation_error", field)


def test_cut_off_body_stores_nothing(account: Account) -> None:
    """A client that disconnects mid-body gets nothing stored, so its retry succeeds."""
    body = json.dumps({"type": "system.update", "data": {"message": "cut off"}}).encode()
    url = httpx.URL(account.service.base_url)
    head = (
        f"POST /v1/events HTTP/1.1\r\nHost: {url.host}:{url.port}\r\n"
        f"Authorization: Bearer {account.key}\r\nContent-Type: application/json\r\n"
        f"Idempotency-Key: cut-off-1\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    with socket.create_connection((url.host, url.port), timeout=5) as connection:
        connection.sendall(head.encode() + body[:20])
    # Let the server see the disconnect before the retry arrives.
    time.sleep(0.5)

    retry = account.client.post(
        "/v1/events",
        content=body,
        headers={"Content-Type": "application/json", "Idempotency-Key": "cut-off-1"},
    )

    assert retry.status_code == 201, retry.text
    listed = account.client.get("/v1/events").json()["data"]
    assert [event["id"] for event in listed] == [retry.json()["id"]]
