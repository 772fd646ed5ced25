"""The app that `wp-llm serve` builds freezes what start-up built, and an embedded app does not."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from wp_llm.server.gc_tuning import YOUNG_COLLECTION_THRESHOLD

# Runs the app's start-up in a fresh interpreter, so the test process's collector stays as it is.
START_APP = """
import gc, json, sys
from pathlib import Path
from fastapi.testclient import TestClient
from wp_llm.server.api.app import create_app
from wp_llm.server.config import Settings

settings = Settings(database_url=sys.argv[1], data_dir=Path(sys.argv[2]), run_worker=False)
with TestClient(create_app(settings, tune_gc=sys.argv[3] == "tune")) as client:
    assert client.get("/readyz").status_code == 200
    print(json.dumps({"frozen": gc.get_freeze_count(), "threshold": gc.get_threshold()}))
"""


def start_app(tmp_path: Path, mode: str) -> dict[str, object]:
    database_url = f"sqlite:///{tmp_path / mode}.db"
    completed = subprocess.run(
        [sys.executable, "-c", START_APP, database_url, str(tmp_path), mode],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return dict(json.loads(completed.stdout.strip().splitlines()[-1]))


def test_tuned_app_freezes_startup(tmp_path: Path) -> None:
    state = start_app(tmp_path, "tune")
    assert isinstance(state["frozen"], int)
    assert state["frozen"] > 10_000
    assert state["threshold"][0] == YOUNG_COLLECTION_THRESHOLD  # type: ignore[index]


def test_embedded_app_leaves_gc(tmp_path: Path) -> None:
    state = start_app(tmp_path, "embedded")
    assert state["frozen"] == 0
    assert state["threshold"][0] == 700  # type: ignore[index]
