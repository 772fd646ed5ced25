"""Parsing of the signature, id and timestamp headers of a delivery.

Pure functions: each turns an untrusted header value into checked values or raises a
`MalformedHeaderError` subclass that states what was expected.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field

from wp_llm._signing import DIGEST_SIZE, STANDARD_SIGNATURE_VERSION
from wp_llm.webhooks.errors import (
    MalformedHeaderError,
    MalformedSignatureError,
    MalformedTimestampError,
)

HEX_SIGNATURE_HEADER = "X-WP-LLM-Signature"
EVENT_TYPE_HEADER = "X-WP-LLM-Event"
DELIVERY_ID_HEADER = "X-WP-LLM-Delivery"
MESSAGE_ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
STANDARD_SIGNATURE_HEADER = "webhook-signature"
STANDARD_HEADERS = (MESSAGE_ID_HEADER, TIMESTAMP_HEADER, STANDARD_SIGNATURE_HEADER)

# Unix seconds have had 10 digits since 2001 and keep 11 until the year 5138, so a
# longer value is milliseconds or garbage. The bound also keeps int() cheap.
MAX_TIMESTAMP_DIGITS = 11
MAX_MESSAGE_ID_LENGTH = 256
# Untrusted values quoted in error messages are cut to this many characters.
MAX_QUOTED_LENGTH = 40

_HEX_DIGITS = frozenset("0123456789abcdef")
_DIGITS = re.compile(r"[0-9]+")
_VISIBLE_ASCII = re.compile(r"[\x21-\x7e]+")


def quote(value: str) -> str:
    """Quote an untrusted value for an error message, escaped and cut short."""
    if len(value) > MAX_QUOTED_LENGTH:
        return repr(value[:MAX_QUOTED_LENGTH]) + "..."
    return repr(value)


@dataclass
class ParsedSignatures:
    """The well-formed digests of a signature header and the first malformed entry, if any."""

    digests: list[bytes] = field(default_factory=list)
    problem: MalformedSignatureError | None = None

    def add_problem(self, message: str, header: str) -> None:
        if self.problem is None:
            self.problem = MalformedSignatureError(message, header=header)


def parse_message_id(value: str) -> str:
    """Check a `webhook-id` value: visible ASCII, as event ids are."""
    if len(value) > MAX_MESSAGE_ID_LENGTH or not _VISIBLE_ASCII.fullmatch(value):
        raise MalformedHeaderError(
            f"{MESSAGE_ID_HEADER} {quote(value)} is not an event id; expected up to "
            f"{MAX_MESSAGE_ID_LENGTH} visible ASCII characters such as 'evt_...'",
            header=MESSAGE_ID_HEADER,
        )
    return value


def parse_timestamp(value: str) -> int:
    """Parse a `webhook-timestamp` value: a non-negative integer of Unix seconds."""
    if not _DIGITS.fullmatch(value):
        raise MalformedTimestampError(
            f"{TIMESTAMP_HEADER} {quote(value)} is not an integer; expected Unix seconds "
            "written as decimal digits",
            header=TIMESTAMP_HEADER,
        )

    if len(value) > MAX_TIMESTAMP_DIGITS:
        raise MalformedTimestampError(
            f"{TIMESTAMP_HEADER} has {len(value)} digits; expected Unix seconds, which have "
            f"at most {MAX_TIMESTAMP_DIGITS} (a 13-digit value is milliseconds)",
            header=TIMESTAMP_HEADER,
        )
    return int(value)


def parse_hex_signatures(value: str) -> ParsedSignatures:
    """Parse `X-WP-LLM-Signature`: lowercase hex digests, space-separated if several."""
    parsed = ParsedSignatures()
    for entry in value.split():
        problem = _hex_entry_problem(entry)
        if problem is None:
            parsed.digests.append(bytes.fromhex(entry))
        else:
            parsed.add_problem(f"{HEX_SIGNATURE_HEADER} {problem}", HEX_SIGNATURE_HEADER)
    return parsed


def _hex_entry_problem(entry: str) -> str | None:
    expected_length = 2 * DIGEST_SIZE
    if entry.lower().startswith("sha256="):
        return "starts with 'sha256=', but this service sends the bare hex digest with no prefix"
    if entry.startswith(f"{STANDARD_SIGNATURE_VERSION},"):
        return (
            f"contains a Standard Webhooks signature, which belongs in {STANDARD_SIGNATURE_HEADER}"
        )
    if not entry.isascii():
        return "contains non-ASCII characters; expected lowercase hex"
    if len(entry) != expected_length:
        return f"is {len(entry)} characters long; expected {expected_length} lowercase hex digits"
    if not set(entry) <= _HEX_DIGITS:
        return _hex_case_problem(entry)
    return None


def _hex_case_problem(entry: str) -> str:
    if set(entry.lower()) <= _HEX_DIGITS:
        return "contains upper-case hex digits, but this service sends lowercase hex"
    return "contains characters other than 0-9 and a-f; expected lowercase hex"


def parse_standard_signatures(value: str) -> ParsedSignatures:
    """Parse `webhook-signature`: space-separated `v1,<base64>` entries.

    Entries of other versions are skipped, as Standard Webhooks requires, but a header
    with no `v1` entry at all is reported as malformed.
    """
    parsed = ParsedSignatures()
    other_versions: list[str] = []
    for entry in value.split():
        version, separator, encoded = entry.partition(",")
        if not separator:
            parsed.add_problem(
                f"{STANDARD_SIGNATURE_HEADER} entry {quote(entry)} has no comma; "
                f"expected '{STANDARD_SIGNATURE_VERSION},<base64 signature>'",
                STANDARD_SIGNATURE_HEADER,
            )
        elif version != STANDARD_SIGNATURE_VERSION:
            other_versions.append(version)
        else:
            _add_standard_digest(parsed, encoded)

    if not parsed.digests and parsed.problem is None:
        parsed.add_problem(_no_v1_message(other_versions), STANDARD_SIGNATURE_HEADER)
    return parsed


def _add_standard_digest(parsed: ParsedSignatures, encoded: str) -> None:
    try:
        digest = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        parsed.add_problem(
            f"{STANDARD_SIGNATURE_HEADER} has a v1 signature that is not valid base64",
            STANDARD_SIGNATURE_HEADER,
        )
        return

    if len(digest) != DIGEST_SIZE:
        parsed.add_problem(
            f"{STANDARD_SIGNATURE_HEADER} has a v1 signature of {len(digest)} bytes; "
            f"expected {DIGEST_SIZE} (HMAC-SHA256)",
            STANDARD_SIGNATURE_HEADER,
        )
        return
    parsed.digests.append(digest)


def _no_v1_message(other_versions: list[str]) -> str:
    if not other_versions:
        return f"{STANDARD_SIGNATURE_HEADER} contains no signature"
    found = ", ".join(quote(version) for version in other_versions[:3])
    return (
        f"{STANDARD_SIGNATURE_HEADER} has no {STANDARD_SIGNATURE_VERSION} signature "
        f"(found versions {found}); this library verifies only "
        f"{STANDARD_SIGNATURE_VERSION} (HMAC-SHA256) signatures"
    )
