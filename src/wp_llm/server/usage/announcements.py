"""The data of platform announcements (`system.maintenance`, `system.update`), checked.

Operators type these on the command line, so every check fails with an
AnnouncementError whose message names the option and the fix.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

MAINTENANCE = "system.maintenance"
UPDATE = "system.update"
MAX_MESSAGE_LENGTH = 2000
MAX_VERSION_LENGTH = 100
EXAMPLE_TIME = "2024-02-04T02:00:00Z"


class AnnouncementError(ValueError):
    """An announcement option has a value that cannot be published."""


def parse_time(option: str, raw: str) -> int:
    """Parse an ISO 8601 time with a UTC offset into Unix seconds."""
    try:
        moment = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise AnnouncementError(
            f"{option} {raw!r} is not an ISO 8601 time; write it like {EXAMPLE_TIME}"
        ) from None
    if moment.tzinfo is None:
        raise AnnouncementError(
            f"{option} {raw!r} has no UTC offset; add Z or an offset such as +02:00"
        )
    return int(moment.timestamp())


def checked_message(message: str) -> str:
    text = message.strip()
    if not text:
        raise AnnouncementError(
            "--message is empty; write the announcement for the accounts' users"
        )
    if len(text) > MAX_MESSAGE_LENGTH:
        raise AnnouncementError(
            f"--message has {len(text)} characters, more than the maximum of {MAX_MESSAGE_LENGTH}"
        )
    return text


def maintenance_data(
    message: str, starts_at: str | None, ends_at: str | None, now: float
) -> dict[str, Any]:
    """Build `system.maintenance` data; the window must start before it ends, and not be over."""
    if starts_at is None or ends_at is None:
        raise AnnouncementError(
            f"a maintenance announcement needs --starts-at and --ends-at, such as {EXAMPLE_TIME}"
        )
    start = parse_time("--starts-at", starts_at)
    end = parse_time("--ends-at", ends_at)
    if start >= end:
        raise AnnouncementError(
            f"--starts-at {starts_at} is not before --ends-at {ends_at}; "
            "the window must end after it starts"
        )
    if end <= now:
        raise AnnouncementError(
            f"--ends-at {ends_at} is in the past; announce only windows that have not ended"
        )
    return {"message": checked_message(message), "starts_at": start, "ends_at": end}


def update_data(
    message: str,
    version: str | None,
    published_at: str | None,
    now: float,
    starts_at: str | None = None,
    ends_at: str | None = None,
) -> dict[str, Any]:
    """Build `system.update` data; `published_at` defaults to now.

    An update may also name the window in which it rolls out (`starts_at`, `ends_at`).
    """
    data: dict[str, Any] = {"message": checked_message(message)}
    window = {"starts_at": ("--starts-at", starts_at), "ends_at": ("--ends-at", ends_at)}
    for field_name, (option, value) in window.items():
        if value is not None:
            data[field_name] = parse_time(option, value)
    if "starts_at" in data and "ends_at" in data and data["starts_at"] >= data["ends_at"]:
        raise AnnouncementError(
            f"--starts-at {starts_at} is not before --ends-at {ends_at}; "
            "the window must end after it starts"
        )
    if version is not None:
        if not version.strip() or len(version) > MAX_VERSION_LENGTH:
            raise AnnouncementError(
                f"--version must be 1 to {MAX_VERSION_LENGTH} characters, such as 2024.02.1"
            )
        data["version"] = version.strip()
    data["published_at"] = (
        int(now) if published_at is None else parse_time("--published-at", published_at)
    )
    return data
