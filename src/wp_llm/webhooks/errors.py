"""Errors raised while verifying a webhook delivery.

Every failure of `Webhook.verify` on untrusted input is one of these:

    SignatureVerificationError
    ├── MissingHeaderError
    ├── MalformedHeaderError
    │   ├── MalformedSignatureError
    │   └── MalformedTimestampError
    ├── SignatureMismatchError
    ├── TimestampOutsideToleranceError
    └── InvalidPayloadError

Each class has a stable `code` string for logs and JSON responses. Messages name the
header or field at fault and what to do, and never contain a secret or an expected
signature.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "InvalidPayloadError",
    "MalformedHeaderError",
    "MalformedSignatureError",
    "MalformedTimestampError",
    "MissingHeaderError",
    "SignatureMismatchError",
    "SignatureVerificationError",
    "TimestampOutsideToleranceError",
]


class SignatureVerificationError(Exception):
    """A delivery failed verification and must not be processed."""

    code: ClassVar[str] = "signature_verification_failed"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class MissingHeaderError(SignatureVerificationError):
    """A header that verification needs is absent or empty."""

    code: ClassVar[str] = "missing_header"

    def __init__(self, message: str, *, header: str) -> None:
        super().__init__(message)
        self.header = header


class MalformedHeaderError(SignatureVerificationError):
    """A header is present but its value does not have the expected format."""

    code: ClassVar[str] = "malformed_header"

    def __init__(self, message: str, *, header: str) -> None:
        super().__init__(message)
        self.header = header


class MalformedSignatureError(MalformedHeaderError):
    """A signature header does not contain a signature in the format this service sends."""

    code: ClassVar[str] = "malformed_signature"


class MalformedTimestampError(MalformedHeaderError):
    """The `webhook-timestamp` header is not an integer number of Unix seconds."""

    code: ClassVar[str] = "malformed_timestamp"


class SignatureMismatchError(SignatureVerificationError):
    """No signature in the request matches the body under any configured secret."""

    code: ClassVar[str] = "signature_mismatch"


class TimestampOutsideToleranceError(SignatureVerificationError):
    """The signature is valid but the timestamp is too old or too far in the future."""

    code: ClassVar[str] = "timestamp_outside_tolerance"

    def __init__(self, message: str, *, timestamp: int) -> None:
        super().__init__(message)
        self.timestamp = timestamp


class InvalidPayloadError(SignatureVerificationError):
    """The signature is valid but the body is not a well-formed event."""

    code: ClassVar[str] = "invalid_payload"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field
