"""WP_LLM_ALLOWED_NETWORKS end to end: deliveries reach only the listed subnets.

Both checks apply: when a webhook is saved, and at every connection.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

from tests.e2e.helpers import create_webhook, publish, wait_for_delivery
from tests.engine.servers import ScriptedReceiver
from tests.support.service import ServiceProcess

ENV = {"WP_LLM_ALLOW_PRIVATE_NETWORKS": "0", "WP_LLM_ALLOWED_NETWORKS": "127.0.0.1/32"}


def test_allowed_subnet_is_delivered_to(
    make_service: Callable[..., ServiceProcess], scripted: Callable[..., ScriptedReceiver]
) -> None:
    service = make_service(env=ENV)
    receiver = scripted()
    with service.client(service.create_key()) as client:
        create_webhook(client, receiver.url)
        event = publish(client, "generation.completed")
        delivered = wait_for_delivery(client, event["id"])
    assert delivered["status"] == "succeeded"


def test_addresses_outside_subnet_are_rejected(make_service: Callable[..., ServiceProcess]) -> None:
    service = make_service(env=ENV)
    with service.client(service.create_key()) as client:
        for url in ("http://127.0.0.2:9/hook", "http://10.0.0.1/hook", "http://[::1]:9/hook"):
            response = client.post("/v1/webhooks", json={"url": url, "events": ["*"]})
            assert response.status_code == 400, url
            assert response.json()["error"]["code"] == "url_not_allowed"


def test_name_is_checked_when_connecting(
    make_service: Callable[..., ServiceProcess], scripted: Callable[..., ScriptedReceiver]
) -> None:
    # `localhost` resolves to 127.0.0.1 and ::1 from the hosts file: only the first is allowed.
    service = make_service(env=ENV)
    receiver = scripted()
    with service.client(service.create_key()) as client:
        create_webhook(client, f"http://localhost:{receiver.port}/hook")
        event = publish(client, "generation.completed")
        delivered = wait_for_delivery(client, event["id"])
    assert delivered["status"] == "succeeded"


def test_name_resolving_outside_subnet_is_refused(
    make_service: Callable[..., ServiceProcess], scripted: Callable[..., ScriptedReceiver]
) -> None:
    service = make_service(env={**ENV, "WP_LLM_ALLOWED_NETWORKS": "::1/128"})
    receiver = scripted()
    with service.client(service.create_key()) as client:
        create_webhook(client, f"http://localhost:{receiver.port}/hook", retry_schedule=[])
        event = publish(client, "generation.completed")
        delivered = wait_for_delivery(client, event["id"])
    # Where the hosts file also maps localhost to ::1, that address is allowed but no server
    # listens there, so the attempt fails to connect instead of being refused.
    answers = {info[4][0] for info in socket.getaddrinfo("localhost", receiver.port)}
    expected = "connection failed: " if "::1" in answers else "refused: "
    assert delivered["status"] == "failed"
    assert delivered["attempts"][0]["error"].startswith(expected)
    assert receiver.requests == []
