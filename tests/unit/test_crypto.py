"""Encryption of endpoint secrets at rest and the key file."""

from __future__ import annotations

import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from wp_llm.server.crypto import KEY_FILE_NAME, SecretBox, SecretKeyError, load_secret_box


def test_secret_box_round_trips_unicode() -> None:
    box = SecretBox(Fernet.generate_key())
    token = box.encrypt("sëcret-✓")
    assert "sëcret" not in token
    assert box.decrypt(token) == "sëcret-✓"


def test_secret_box_rejects_a_malformed_key() -> None:
    with pytest.raises(SecretKeyError, match="Fernet key"):
        SecretBox("not-a-key")


def test_secret_box_reports_a_different_key() -> None:
    token = SecretBox(Fernet.generate_key()).encrypt("s")
    with pytest.raises(SecretKeyError, match="could not be decrypted"):
        SecretBox(Fernet.generate_key()).decrypt(token)


def test_key_file_is_created_once_with_owner_only_access(tmp_path: Path) -> None:
    first = load_secret_box(None, tmp_path)
    second = load_secret_box(None, tmp_path)
    assert second.decrypt(first.encrypt("x")) == "x"
    mode = stat.S_IMODE(os.stat(tmp_path / KEY_FILE_NAME).st_mode)
    assert mode == 0o600


def test_concurrent_first_starts_share_one_key(tmp_path: Path) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        boxes = list(pool.map(lambda _: load_secret_box(None, tmp_path), range(8)))
    token = boxes[0].encrypt("shared")
    assert {box.decrypt(token) for box in boxes} == {"shared"}
    assert sorted(p.name for p in tmp_path.iterdir()) == [KEY_FILE_NAME]


def test_decryption_is_cached_per_token() -> None:
    box = SecretBox(Fernet.generate_key())
    token = box.encrypt("cached")
    assert box.decrypt(token) == box.decrypt(token) == "cached"
    assert box._decrypt_cached.cache_info().hits >= 1
