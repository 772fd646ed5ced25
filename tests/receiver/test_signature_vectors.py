"""The shared test vectors in spec/signature-vectors.json, checked two ways.

Node's crypto module recomputes every expected value, which proves the file right
independently of this package; then `Webhook` must agree with every case.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from wp_llm import _signing
from wp_llm.webhooks import EVENT_TYPES, Webhook, errors

VECTORS_PATH = Path(__file__).resolve().parents[2] / "spec" / "signature-vectors.json"
VECTORS: dict[str, Any] = json.loads(VECTORS_PATH.read_text(encoding="utf-8"))
NODE_TIMEOUT_SECONDS = 30

# Reads [{secret, body_base64, msg_id, timestamp}] on stdin and prints the hex
# signature, the Standard Webhooks signature and the whsec_ form of each.
NODE_SCRIPT = """
const crypto = require("crypto");
const cases = JSON.parse(require("fs").readFileSync(0, "utf8"));
const results = cases.map((c) => {
  const key = Buffer.from(c.secret, "utf8");
  const body = Buffer.from(c.body_base64, "base64");
  const signed = Buffer.concat([Buffer.from(`${c.msg_id}.${c.timestamp}.`, "utf8"), body]);
  return {
    signature_hex: crypto.createHmac("sha256", key).update(body).digest("hex"),
    signature_standard: "v1," + crypto.createHmac("sha256", key).update(signed).digest("base64"),
    secret_standard: "whsec_" + key.toString("base64"),
  };
});
process.stdout.write(JSON.stringify(results));
"""


def case_id(case: dict[str, Any]) -> str:
    return str(case["name"])


def body_bytes(case: dict[str, Any]) -> bytes:
    return base64.b64decode(case["body_base64"])


@pytest.fixture(scope="module")
def node_results() -> list[dict[str, str]]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed, so the vectors cannot be checked independently")
    completed = subprocess.run(
        [node, "-e", NODE_SCRIPT],
        input=json.dumps(VECTORS["valid"]),
        capture_output=True,
        text=True,
        check=True,
        timeout=NODE_TIMEOUT_SECONDS,
    )
    results: list[dict[str, str]] = json.loads(completed.stdout)
    return results


@pytest.mark.parametrize("index", range(len(VECTORS["valid"])))
def test_vectors_match_node_crypto(node_results: list[dict[str, str]], index: int) -> None:
    case = VECTORS["valid"][index]
    expected = node_results[index]

    assert case["signature_hex"] == expected["signature_hex"]
    assert case["signature_standard"] == expected["signature_standard"]
    assert case["secret_standard"] == expected["secret_standard"]


@pytest.mark.parametrize("case", VECTORS["valid"], ids=case_id)
def test_vectors_body_base64_is_body_text(case: dict[str, Any]) -> None:
    assert body_bytes(case) == case["body"].encode("utf-8")


def test_vectors_include_non_ascii_secret_and_body() -> None:
    assert any(not case["secret"].isascii() for case in VECTORS["valid"])
    assert any(not case["body"].isascii() for case in VECTORS["valid"])


@pytest.mark.parametrize("case", VECTORS["valid"], ids=case_id)
def test_vectors_match_signing_core(case: dict[str, Any]) -> None:
    body = body_bytes(case)

    assert _signing.sign_hex(case["secret"], body) == case["signature_hex"]
    assert (
        _signing.sign_standard_one(case["secret"], case["msg_id"], case["timestamp"], body)
        == case["signature_standard"]
    )
    assert _signing.standard_secret(case["secret"]) == case["secret_standard"]


def webhook_at(secrets: str | list[str], now: int) -> Webhook:
    return Webhook(secrets, tolerance=VECTORS["tolerance_seconds"], clock=lambda: now)


@pytest.mark.parametrize("secret_field", ["secret", "secret_standard"])
@pytest.mark.parametrize("case", VECTORS["valid"], ids=case_id)
def test_vectors_valid_cases_verify(case: dict[str, Any], secret_field: str) -> None:
    webhook = webhook_at(case[secret_field], case["now"])
    body = body_bytes(case)
    standard = {
        "webhook-id": case["msg_id"],
        "webhook-timestamp": str(case["timestamp"]),
        "webhook-signature": case["signature_standard"],
    }

    assert webhook.verify(body, standard).type == case["event_type"]
    assert webhook.verify(body, {"X-WP-LLM-Signature": case["signature_hex"]}).id == case["msg_id"]


@pytest.mark.parametrize("case", VECTORS["valid"], ids=case_id)
def test_vectors_valid_cases_parse_to_catalog_models(case: dict[str, Any]) -> None:
    webhook = webhook_at(case["secret"], case["now"])

    event = webhook.verify(body_bytes(case), {"X-WP-LLM-Signature": case["signature_hex"]})

    if case["event_type"] in EVENT_TYPES:
        assert type(event) is EVENT_TYPES[case["event_type"]]


@pytest.mark.parametrize("case", VECTORS["rotation"], ids=case_id)
def test_vectors_rotation_header_verifies_with_each_secret(case: dict[str, Any]) -> None:
    headers = {
        "webhook-id": case["msg_id"],
        "webhook-timestamp": str(case["timestamp"]),
        "webhook-signature": case["webhook_signature"],
    }

    for secret in case["secrets"]:
        event = webhook_at(secret, case["timestamp"]).verify(body_bytes(case), headers)
        assert event.id == case["msg_id"]


@pytest.mark.parametrize("case", VECTORS["invalid"], ids=case_id)
def test_vectors_invalid_cases_raise_named_error(case: dict[str, Any]) -> None:
    webhook = webhook_at(case["secrets"], case["now"])
    error_class = getattr(errors, case["error"])

    with pytest.raises(errors.SignatureVerificationError) as caught:
        webhook.verify(body_bytes(case), case["headers"])

    assert type(caught.value) is error_class
    assert caught.value.code == case["code"]


def test_vectors_error_codes_match_error_classes() -> None:
    codes = {name: getattr(errors, name).code for name in errors.__all__}

    assert VECTORS["error_codes"] == codes


def test_vectors_invalid_cases_cover_every_error_class() -> None:
    raised = {case["error"] for case in VECTORS["invalid"]}

    assert raised == set(errors.__all__) - {"SignatureVerificationError"}


@pytest.mark.parametrize("case", VECTORS["invalid_secrets"], ids=case_id)
def test_vectors_invalid_secrets_are_rejected(case: dict[str, Any]) -> None:
    assert case["error"] == "ValueError"
    with pytest.raises(ValueError):
        Webhook(case["secret"])
