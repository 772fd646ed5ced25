"""Every Python example in docs/sdk.md runs, in order, against the real service."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import Account

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "sdk.md"
FENCE = re.compile(r"^```(?P<language>[\w-]*)\n(?P<code>.*?)^```$", re.MULTILINE | re.DOTALL)


def fenced_blocks() -> list[tuple[str, str]]:
    return [(match["language"], match["code"]) for match in FENCE.finditer(GUIDE.read_text())]


def test_guide_has_python_examples() -> None:
    assert sum(language == "python" for language, _ in fenced_blocks()) >= 10


def test_guide_other_blocks_are_install_lines_or_plain_text() -> None:
    # Shell blocks cannot run here, so they may hold nothing but the install command;
    # untagged blocks are diagrams.
    for language, code in fenced_blocks():
        if language == "sh":
            assert all(line.startswith("pip install ") for line in code.splitlines()), code
        else:
            assert language in {"python", ""}, language


def test_guide_python_examples_run(account: Account, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WP_LLM_API_KEY", account.key)
    monkeypatch.setenv("WP_LLM_BASE_URL", account.service.base_url)
    namespace: dict[str, object] = {"__name__": "sdk_guide"}

    for number, (language, code) in enumerate(fenced_blocks()):
        if language != "python":
            continue
        try:
            exec(compile(code, f"{GUIDE.name} block {number}", "exec"), namespace)
        except Exception as error:
            pytest.fail(f"block {number} of {GUIDE.name} failed: {error!r}\n{code}")
