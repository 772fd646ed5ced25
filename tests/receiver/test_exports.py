"""The public surface of wp_llm.webhooks: sorted exports, error tree, optional imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

import wp_llm
import wp_llm.webhooks
from wp_llm.webhooks import errors, events

PUBLIC_MODULES = [wp_llm.webhooks, errors, events]
IMPORT_TIMEOUT_SECONDS = 60


@pytest.mark.parametrize("module", PUBLIC_MODULES, ids=lambda module: module.__name__)
def test_all_is_sorted(module: ModuleType) -> None:
    assert module.__all__ == sorted(module.__all__)


@pytest.mark.parametrize("module", PUBLIC_MODULES, ids=lambda module: module.__name__)
def test_all_names_resolve(module: ModuleType) -> None:
    for name in module.__all__:
        assert hasattr(module, name), name


@pytest.mark.parametrize("module", [errors, events], ids=lambda module: module.__name__)
def test_package_reexports_submodule(module: ModuleType) -> None:
    assert set(module.__all__) <= set(wp_llm.webhooks.__all__)


def test_exported_classes_live_in_package() -> None:
    for name in wp_llm.webhooks.__all__:
        value = getattr(wp_llm.webhooks, name)
        if isinstance(value, type):
            assert value.__module__.startswith("wp_llm.webhooks"), name


@pytest.mark.parametrize("name", errors.__all__)
def test_error_class_has_one_line_docstring(name: str) -> None:
    docstring = getattr(errors, name).__doc__

    assert docstring is not None
    assert "\n" not in docstring.strip()


def test_error_classes_derive_from_root_with_unique_codes() -> None:
    classes = [getattr(errors, name) for name in errors.__all__]

    assert all(issubclass(error, errors.SignatureVerificationError) for error in classes)
    assert len({error.code for error in classes}) == len(classes)


def test_package_ships_py_typed() -> None:
    assert (Path(wp_llm.__file__).parent / "py.typed").is_file()


def test_import_leaves_frameworks_and_redis_unimported() -> None:
    # A fresh interpreter, since this test process has imported them already.
    script = (
        "import sys, wp_llm.webhooks\n"
        "loaded = {'flask', 'django', 'fastapi', 'starlette', 'redis'} & set(sys.modules)\n"
        "print(sorted(loaded))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        timeout=IMPORT_TIMEOUT_SECONDS,
    )

    assert completed.stdout.strip() == "[]"
