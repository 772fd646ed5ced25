"""The offset-file clock that lets tests move the service's usage clock."""

from __future__ import annotations

import os
from pathlib import Path

from wp_llm.server.usage.clock import ManualClock, OffsetFileClock, SystemClock, create_clock

WALL = 1_700_000_000.0


def write_offset(path: Path, text: str) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def test_offset_clock_without_file_is_wall_clock(tmp_path: Path) -> None:
    clock = OffsetFileClock(tmp_path / "offset", wall_clock=lambda: WALL)

    assert clock.now() == WALL


def test_offset_clock_adds_offset(tmp_path: Path) -> None:
    path = tmp_path / "offset"
    write_offset(path, "3600.5\n")

    clock = OffsetFileClock(path, wall_clock=lambda: WALL)

    assert clock.now() == WALL + 3600.5


def test_offset_clock_reads_changed_file(tmp_path: Path) -> None:
    path = tmp_path / "offset"
    write_offset(path, "10")
    clock = OffsetFileClock(path, wall_clock=lambda: WALL)
    clock.now()

    write_offset(path, "20")

    assert clock.now() == WALL + 20


def test_offset_clock_keeps_previous_offset_on_bad_content(tmp_path: Path) -> None:
    path = tmp_path / "offset"
    write_offset(path, "10")
    clock = OffsetFileClock(path, wall_clock=lambda: WALL)
    clock.now()

    write_offset(path, "ten seconds")

    assert clock.now() == WALL + 10


def test_offset_clock_empty_file_is_zero(tmp_path: Path) -> None:
    path = tmp_path / "offset"
    write_offset(path, "")

    assert OffsetFileClock(path, wall_clock=lambda: WALL).now() == WALL


def test_create_clock_without_file_is_system_clock() -> None:
    assert isinstance(create_clock(None), SystemClock)


def test_create_clock_with_file_is_offset_clock(tmp_path: Path) -> None:
    assert isinstance(create_clock(tmp_path / "offset"), OffsetFileClock)


def test_manual_clock_moves_only_when_told() -> None:
    clock = ManualClock(WALL)
    clock.advance(1.5)

    assert clock.now() == WALL + 1.5
