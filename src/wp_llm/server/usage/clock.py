"""The clock that usage accounting reads: rate-limit buckets, notice windows, quota periods.

The service uses the wall clock. Tests that run the service as a subprocess can shift
it with `WP_LLM_CLOCK_OFFSET_FILE`, which is for tests only: a deployment that sets it
lets anyone who can write that file reset every rate limit and quota period.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

logger = logging.getLogger(__name__)


class Clock(Protocol):
    """A source of the current time."""

    def now(self) -> float:
        """Return the current time in Unix seconds."""
        ...


class SystemClock:
    """The wall clock."""

    def now(self) -> float:
        return time.time()


class ManualClock:
    """A clock that moves only when a unit test moves it."""

    def __init__(self, start: float) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds

    def set(self, now: float) -> None:
        self._now = now


class OffsetFileClock:
    """The wall clock plus the number of seconds written in a file; for tests only.

    The file is read again only when its inode, size or modification time changes, so a
    call costs one `stat`. Write a new offset atomically (write a temporary file and
    rename it over the old one), or a reader may see half a number. A missing file means
    no offset, and an unreadable one keeps the previous offset.
    """

    def __init__(self, path: Path, wall_clock: Callable[[], float] = time.time) -> None:
        self._path = path
        self._wall_clock = wall_clock
        self._lock = threading.Lock()
        self._signature: tuple[int, int, int] | None = None
        self._offset = 0.0

    def now(self) -> float:
        return self._wall_clock() + self.offset()

    def offset(self) -> float:
        """Return the offset in seconds, reading the file again if it changed."""
        try:
            status = os.stat(self._path)
        except FileNotFoundError:
            return 0.0
        signature = (status.st_ino, status.st_size, status.st_mtime_ns)
        with self._lock:
            if signature != self._signature:
                self._signature = signature
                self._offset = self._read(self._offset)
            return self._offset

    def _read(self, previous: float) -> float:
        try:
            return float(self._path.read_text().strip() or 0)
        except (OSError, ValueError) as error:
            logger.warning(
                "clock offset file unreadable; keeping the previous offset",
                extra={"path": str(self._path), "offset_s": previous, "error": str(error)[:200]},
            )
            return previous


def create_clock(offset_file: Path | None) -> Clock:
    """Return the wall clock, or an offset clock when a test named an offset file."""
    if offset_file is None:
        return SystemClock()
    logger.warning(
        "usage clock reads an offset file; this is for tests only", extra={"path": str(offset_file)}
    )
    return OffsetFileClock(offset_file)
