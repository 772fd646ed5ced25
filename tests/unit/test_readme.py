"""The README's Python example runs and does what the text around it describes."""

from __future__ import annotations

import json
import re
from pathlib import Path

from wp_llm import catalog
from wp_llm.webhooks import Webhook

README = Path(__file__).resolve().parents[2] / "README.md"
SECRET = "the endpoint's signing secret"


def readme_namespace() -> dict[str, object]:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text("utf-8"), flags=re.S)
    assert blocks, "the README has no Python example"
    namespace: dict[str, object] = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)  # noqa: S102 - our own docs
    return namespace


def signed_delivery() -> tuple[bytes, dict[str, str]]:
    envelope = {
        "id": "evt_readme",
        "object": "event",
        "created": 1,
        "type": "generation.completed",
        "data": catalog.EVENT_TYPES["generation.completed"].example,
    }
    body = json.dumps(envelope, separators=(",", ":")).encode()
    return body, Webhook(SECRET).sign(body)


def test_readme_receiver_accepts_a_signed_delivery() -> None:
    handle = readme_namespace()["handle"]
    body, headers = signed_delivery()
    assert handle(body, headers) == 204  # type: ignore[operator]


def test_readme_receiver_rejects_a_tampered_body() -> None:
    handle = readme_namespace()["handle"]
    body, headers = signed_delivery()
    assert handle(body.replace(b"evt_readme", b"evt_forged"), headers) == 401  # type: ignore[operator]
