"""What a receiver gets: the exact bytes, both signatures and the contract headers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import subprocess
import time

import pytest

from tests.conftest import Account
from tests.e2e.helpers import create_webhook, publish, wait_for_delivery
from tests.support.receiver import Receiver
from wp_llm.server.engine.sender import USER_AGENT

NODE = "/usr/bin/node"


def node_round_trip(body: bytes) -> bytes:
    script = (
        "let s='';process.stdin.setEncoding('utf8');process.stdin.on('data',c=>s+=c)"
        ".on('end',()=>process.stdout.write(JSON.stringify(JSON.parse(s))))"
    )
    return subprocess.run([NODE, "-e", script], input=body, capture_output=True, check=True).stdout


def test_delivery_body_is_the_published_envelope(account: Account, receiver: Receiver) -> None:
    create_webhook(account.client, receiver.url, ["generation.completed"])
    event = publish(account.client, "generation.completed")
    [request] = receiver.wait_for(1)
    envelope = json.loads(request.body)
    assert list(envelope) == ["id", "object", "created", "type", "data"]
    assert envelope["id"] == event["id"]
    assert envelope["object"] == "event"
    assert envelope["type"] == "generation.completed"
    assert isinstance(envelope["created"], int)
    assert abs(envelope["created"] - time.time()) < 60


def test_delivery_headers_carry_both_signatures(account: Account, receiver: Receiver) -> None:
    secret = "ünïcode-secret-✓-1234"
    create_webhook(account.client, receiver.url, ["analysis.completed"], secret=secret)
    event = publish(account.client, "analysis.completed")
    [request] = receiver.wait_for(1)
    headers, body = request.headers, request.body
    key = secret.encode("utf-8")

    assert headers["content-type"] == "application/json"
    # Only ours: aiohttp adds its own User-Agent to a request that sets none.
    assert headers["user-agent"] == USER_AGENT
    assert headers["x-wp-llm-signature"] == hmac.new(key, body, hashlib.sha256).hexdigest()
    assert headers["x-wp-llm-event"] == "analysis.completed"
    assert headers["x-wp-llm-delivery"].startswith("dlv_")
    assert headers["webhook-id"] == event["id"]
    timestamp = headers["webhook-timestamp"]
    assert abs(int(timestamp) - time.time()) < 60
    signed = f"{event['id']}.{timestamp}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert headers["webhook-signature"] == f"v1,{expected}"


def test_standard_webhooks_secret_form_is_base64_of_secret(
    account: Account, receiver: Receiver
) -> None:
    created = create_webhook(account.client, receiver.url, secret="plain-secret-value")
    assert (
        created["standard_webhooks_secret"]
        == "whsec_" + base64.b64encode(b"plain-secret-value").decode()
    )


def test_prefixed_secret_rejected_with_reason(account: Account, receiver: Receiver) -> None:
    prefixed = "whsec_" + base64.b64encode(b"plain-secret-value").decode()
    response = account.client.post(
        "/v1/webhooks", json={"url": receiver.url, "events": ["*"], "secret": prefixed}
    )

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["details"]["field"] == "secret"
    # The validator's own words, without pydantic's "Value error, " prefix.
    assert error["message"].startswith("Invalid value for secret: pass the raw secret, not the")


def test_generated_secret_is_long_and_unprefixed(account: Account, receiver: Receiver) -> None:
    created = create_webhook(account.client, receiver.url)
    assert len(created["secret"]) >= 32
    assert not created["secret"].startswith("whsec_")
    assert "secret" not in account.client.get(f"/v1/webhooks/{created['id']}").json()


# Each row is event data whose JSON text a naive serializer would print differently
# from JavaScript's JSON.stringify.
TRICKY_DATA = [
    {"text": "Привет, 世界 — naïve café ☕ 🚀"},  # non-ASCII stays unescaped
    {"ratio": 1.0, "half": 0.5, "neg": -2.0},  # integral floats print without ".0"
    {"big": 1e16, "tiny": 1e-7, "huge": 1e21, "small": 0.000001},  # exponent thresholds
    {"10": "ten", "2": "two", "b": 1, "a": 2, "01": "not an index"},  # index-like keys sort first
    {"counter": 9007199254740991, "negative": -9007199254740991},  # the largest exact integers
    {"ctrl": "tab\there\u0001\u007f", "quote": '"\\/'},
]


@pytest.mark.parametrize("extra", TRICKY_DATA)
def test_body_survives_node_round_trip(account: Account, receiver: Receiver, extra: dict) -> None:
    create_webhook(account.client, receiver.url, ["generation.started"])
    data = {
        "id": "gen_1",
        "object": "text_generation",
        "created": 1,
        "model": "wp-coder",
        "prompt": "p",
        **extra,
    }
    publish(account.client, "generation.started", data)
    [request] = receiver.wait_for(1)
    assert node_round_trip(request.body) == request.body


def test_every_attempt_sends_the_same_bytes(account: Account, receiver: Receiver) -> None:
    from tests.support.receiver import Reply

    receiver.reply_with(Reply(500), Reply(500))
    create_webhook(account.client, receiver.url, ["usage.limit_exceeded"])
    event = publish(account.client, "usage.limit_exceeded")
    requests = receiver.wait_for(3)
    assert {r.body for r in requests} == {requests[0].body}
    assert {r.headers["x-wp-llm-delivery"] for r in requests} == {
        requests[0].headers["x-wp-llm-delivery"]
    }
    assert wait_for_delivery(account.client, event["id"])["status"] == "succeeded"
