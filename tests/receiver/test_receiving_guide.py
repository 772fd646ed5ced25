"""docs/receiving.md: every Python block runs, and its tables match the code."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from wp_llm.webhooks import errors

from .samples import SECRET

ROOT = Path(__file__).resolve().parents[2]
GUIDE = (ROOT / "docs" / "receiving.md").read_text(encoding="utf-8")
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```$", re.DOTALL | re.MULTILINE)
ERROR_ROW = re.compile(r"^\| `(\w+Error)` \| `(\w+)` \| (\d{3}) \|$", re.MULTILINE)


def test_guide_python_blocks_run_in_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # The blocks build on each other, as a reader would type them into one module.
    monkeypatch.setenv("WP_LLM_WEBHOOK_SECRET", SECRET)
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {"__name__": "receiving_guide"}
    blocks = PYTHON_BLOCK.findall(GUIDE)

    for number, block in enumerate(blocks, start=1):
        code = compile(block, f"docs/receiving.md, Python block {number}", "exec")
        exec(code, namespace)

    assert len(blocks) >= 10
    assert namespace["receive"](b"{}", {}) == (400, "missing_header")


def test_guide_error_table_matches_error_codes() -> None:
    rows = {name: code for name, code, _ in ERROR_ROW.findall(GUIDE)}

    expected = {name: getattr(errors, name).code for name in errors.__all__}
    del expected["SignatureVerificationError"]
    assert rows == expected


def test_guide_names_existing_examples() -> None:
    for name in re.findall(r"`(receive_\w+\.py)`", GUIDE):
        assert (ROOT / "examples" / name).is_file(), name
