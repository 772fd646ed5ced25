"""Secret rotation: the new secret is shown once, and old ones sign during their grace period."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.conftest import Account
from tests.e2e.helpers import create_webhook, publish
from tests.engine.servers import Received, ScriptedReceiver
from wp_llm import _signing
from wp_llm.webhooks import SignatureMismatchError, Webhook

OLD_SECRET = "first-secret-0123456789"
NEW_SECRET = "second-secret-9876543210"


def rotate(client: httpx.Client, webhook_id: str, **body: Any) -> httpx.Response:
    return client.post(f"/v1/webhooks/{webhook_id}/rotate_secret", json=body)


def deliver_one(client: httpx.Client, receiver: ScriptedReceiver) -> Received:
    already = len(receiver.requests)
    publish(client, "generation.completed")
    return receiver.wait_for(already + 1)[already]


def hex_only(request: Received) -> dict[str, str]:
    return {
        name: value for name, value in request.headers.items() if not name.startswith("webhook-")
    }


def test_rotation_returns_new_secret_once(account: Account) -> None:
    webhook = create_webhook(account.client, "https://example.com/hook", secret=OLD_SECRET)
    rotated = rotate(account.client, webhook["id"], secret=NEW_SECRET, grace_period=3600)
    shown = account.client.get(f"/v1/webhooks/{webhook['id']}").json()

    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["secret"] == NEW_SECRET
    assert rotated.json()["standard_webhooks_secret"] == _signing.standard_secret(NEW_SECRET)
    assert rotated.json()["previous_secrets_expire_at"] == pytest.approx(time.time() + 3600, abs=5)
    assert "secret" not in shown
    assert "standard_webhooks_secret" not in shown


def test_rotation_generates_secret_when_omitted(account: Account) -> None:
    webhook = create_webhook(account.client, "https://example.com/hook")
    rotated = rotate(account.client, webhook["id"]).json()
    assert len(rotated["secret"]) >= 32
    assert not rotated["secret"].startswith("whsec_")
    assert rotated["secret"] != webhook["secret"]
    assert rotated["previous_secrets_expire_at"] == pytest.approx(time.time() + 86400, abs=5)


def test_grace_period_signs_with_both_secrets(
    account: Account, scripted: Callable[..., ScriptedReceiver]
) -> None:
    receiver = scripted()
    webhook = create_webhook(account.client, receiver.url, secret=OLD_SECRET)
    rotate(account.client, webhook["id"], secret=NEW_SECRET)
    request = deliver_one(account.client, receiver)

    signatures = request.headers["webhook-signature"].split(" ")
    expected_new = _signing.sign_standard_one(
        NEW_SECRET,
        request.headers["webhook-id"],
        int(request.headers["webhook-timestamp"]),
        request.body,
    )
    assert len(signatures) == 2
    assert signatures[0] == expected_new
    assert request.headers["x-wp-llm-signature"] == _signing.sign_hex(NEW_SECRET, request.body)
    assert (
        Webhook(OLD_SECRET).verify(request.body, request.headers).id
        == request.headers["webhook-id"]
    )
    assert (
        Webhook(NEW_SECRET).verify(request.body, request.headers).id
        == request.headers["webhook-id"]
    )
    assert Webhook(_signing.standard_secret(OLD_SECRET)).verify(request.body, request.headers)
    assert Webhook(NEW_SECRET).verify(request.body, hex_only(request))
    with pytest.raises(SignatureMismatchError):
        Webhook(OLD_SECRET).verify(request.body, hex_only(request))


def test_zero_grace_retires_old_secret(
    account: Account, scripted: Callable[..., ScriptedReceiver]
) -> None:
    receiver = scripted()
    webhook = create_webhook(account.client, receiver.url, secret=OLD_SECRET)
    rotated = rotate(account.client, webhook["id"], secret=NEW_SECRET, grace_period=0)
    request = deliver_one(account.client, receiver)

    assert rotated.json()["previous_secrets_expire_at"] is None
    assert len(request.headers["webhook-signature"].split(" ")) == 1
    assert Webhook(NEW_SECRET).verify(request.body, request.headers)
    with pytest.raises(SignatureMismatchError):
        Webhook(OLD_SECRET).verify(request.body, request.headers)


def test_grace_period_ends(account: Account, scripted: Callable[..., ScriptedReceiver]) -> None:
    receiver = scripted()
    webhook = create_webhook(account.client, receiver.url, secret=OLD_SECRET)
    rotate(account.client, webhook["id"], secret=NEW_SECRET, grace_period=1)
    during = deliver_one(account.client, receiver)
    time.sleep(1.1)
    after = deliver_one(account.client, receiver)

    assert len(during.headers["webhook-signature"].split(" ")) == 2
    assert len(after.headers["webhook-signature"].split(" ")) == 1


def test_second_rotation_keeps_every_active_secret(
    account: Account, scripted: Callable[..., ScriptedReceiver]
) -> None:
    receiver = scripted()
    webhook = create_webhook(account.client, receiver.url, secret=OLD_SECRET)
    rotate(account.client, webhook["id"], secret=NEW_SECRET)
    third = rotate(account.client, webhook["id"]).json()["secret"]
    request = deliver_one(account.client, receiver)

    assert len(request.headers["webhook-signature"].split(" ")) == 3
    assert request.headers["x-wp-llm-signature"] == _signing.sign_hex(third, request.body)
    for secret in (OLD_SECRET, NEW_SECRET, third):
        assert Webhook(secret).verify(request.body, request.headers)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"grace_period": 8 * 86400}, "grace_period"),
        ({"grace_period": -1}, "grace_period"),
        ({"secret": "short"}, "secret"),
        ({"secret": " padded-secret-value "}, "secret"),
        ({"secret": "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQ="}, "secret"),
        ({"secret": NEW_SECRET, "extra": 1}, "extra"),
    ],
)
def test_rotation_rejects_bad_request(account: Account, body: dict[str, Any], field: str) -> None:
    webhook = create_webhook(account.client, "https://example.com/hook", secret=OLD_SECRET)
    response = rotate(account.client, webhook["id"], **body)
    assert response.status_code == 400
    assert response.json()["error"]["details"]["field"] == field


def test_grace_period_cap_is_named(account: Account) -> None:
    webhook = create_webhook(account.client, "https://example.com/hook")
    error = rotate(account.client, webhook["id"], grace_period=8 * 86400).json()["error"]
    assert error["details"]["maximum"] == 7 * 86400
    assert "WP_LLM_MAX_GRACE_PERIOD" in error["message"]


def test_rotation_of_unknown_webhook_is_not_found(account: Account) -> None:
    response = rotate(account.client, "webhook_01NOTAREALWEBHOOKID0000000")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "webhook_not_found"
