"""No secret, signature, API key or URL password reaches the service's logs or error messages.

The service runs at debug level while the test creates webhooks, rotates secrets,
delivers, fails in several ways, gets a webhook disabled and sends bad requests.
Then every line of its log file is searched for each sensitive value.
"""

from __future__ import annotations

import base64
import socket
from collections.abc import Callable
from typing import Any

from tests.e2e.helpers import create_webhook, publish
from tests.engine.helpers import wait_until, webhook_of
from tests.engine.servers import ScriptedReceiver, answer
from tests.support.service import ServiceProcess

ENV = {
    "WP_LLM_LOG_LEVEL": "debug",
    "WP_LLM_CIRCUIT_FAILURE_THRESHOLD": "2",
    "WP_LLM_CIRCUIT_PROBE_INTERVAL": "0.3s",
    "WP_LLM_DISABLE_AFTER": "1s",
}
FIRST_SECRET = "first-signing-secret-4b1d"
SECOND_SECRET = "second-signing-secret-77ce"
PASSWORDS = {
    "ok": "okay-pass-31f9",
    "failing": "failing-pass-c0de",
    "refused": "refused-pass-9a7e",
    "redirect": "redirect-pass-5e5e",
    "invalid": "invalid-pass-0b0e",
}


def with_password(url: str, name: str) -> str:
    return url.replace("http://", f"http://user-{name}:{PASSWORDS[name]}@")


def closed_port_url() -> str:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{unused.getsockname()[1]}/hook"


def signature_parts(received: list[Any]) -> set[str]:
    parts = set()
    for request in received:
        parts.add(request.headers["x-wp-llm-signature"])
        for signature in request.headers["webhook-signature"].split(" "):
            parts.add(signature.partition(",")[2])
        if "authorization" in request.headers:
            parts.add(request.headers["authorization"].partition(" ")[2])
    return parts


def test_logs_and_errors_hold_no_secrets(
    make_service: Callable[..., ServiceProcess], scripted: Callable[..., ScriptedReceiver]
) -> None:
    service = make_service(env=ENV)
    api_key = service.create_key()
    ok = scripted()
    failing = scripted(answer(500, headers={"X-Echo": "nothing"}))
    target = scripted()
    redirecting = scripted(answer(302, headers={"Location": with_password(target.url, "redirect")}))
    secrets: set[str] = {api_key, FIRST_SECRET, SECOND_SECRET, *PASSWORDS.values()}
    errors: list[str] = []

    with service.client(api_key) as client:
        good = create_webhook(
            client, with_password(ok.url, "ok"), ["generation.*"], secret=FIRST_SECRET
        )
        rotated = client.post(
            f"/v1/webhooks/{good['id']}/rotate_secret", json={"secret": SECOND_SECRET}
        )
        generated = client.post(f"/v1/webhooks/{good['id']}/rotate_secret", json={}).json()[
            "secret"
        ]
        doomed = create_webhook(client, with_password(failing.url, "failing"), ["generation.*"])
        refused = create_webhook(
            client, with_password(closed_port_url(), "refused"), ["analysis.*"]
        )
        create_webhook(client, redirecting.url, ["analysis.*"])
        secrets |= {generated, doomed["secret"], refused["secret"]}
        secrets |= {
            base64.b64encode(s.encode()).decode() for s in (FIRST_SECRET, SECOND_SECRET, generated)
        }

        for _ in range(3):
            publish(client, "generation.completed")
            publish(client, "analysis.completed")
        client.post(f"/v1/webhooks/{good['id']}/test", json={})
        errors.append(client.post(f"/v1/webhooks/{refused['id']}/test", json={}).json()["error"])
        wait_until(lambda: not webhook_of(client, doomed["id"])["enabled"], timeout=30)
        ok.wait_for(4)

        bad_requests: list[dict[str, Any]] = [
            {"url": with_password("ftp://example.com/", "invalid"), "events": ["*"]},
            {"url": "https://example.com/", "events": ["*"], "secret": "whsec_" + FIRST_SECRET},
            {"url": "https://example.com/", "events": ["*"], "secret": f" {FIRST_SECRET} "},
        ]
        for body in bad_requests:
            errors.append(client.post("/v1/webhooks", json=body).json()["error"])
        shown = [webhook_of(client, webhook["id"]) for webhook in (good, doomed, refused)]

    service.stop()
    log_lines = service.log_path.read_text(errors="replace").splitlines()
    secrets |= signature_parts(ok.requests + failing.requests)

    # The log must hold the events whose fields could carry secrets, or the search proves nothing.
    assert rotated.status_code == 200
    assert any("delivery attempt failed; will retry" in line for line in log_lines)
    assert any("connection failed" in line for line in log_lines)
    assert any("redirect not followed" in line for line in log_lines)
    assert any("webhook disabled" in line for line in log_lines)
    assert any("delivery succeeded" in line for line in log_lines)
    for secret in secrets:
        leaks = [line for line in log_lines if secret in line]
        assert leaks == [], (
            f"a secret appears in {len(leaks)} log lines, such as {leaks[0][:200]!r}"
        )
        assert not [error for error in errors if secret in str(error)]
        assert not [webhook for webhook in shown if secret in str(webhook)]
    assert "***@" in shown[0]["url"]
    assert len(errors) == 4
