"""The README's first command runs examples/demo.py; it must deliver and verify all three events."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo.py"


def test_demo_delivers_three_verified_events(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(DEMO), "--data-dir", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("succeeded") == 3
    assert result.stdout.count("valid") == 6
