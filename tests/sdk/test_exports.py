"""The public names of `wp_llm` and `wp_llm.exceptions`: sorted, complete, importable."""

from __future__ import annotations

from types import ModuleType

import pytest

import wp_llm
from wp_llm import _client, exceptions


@pytest.mark.parametrize("module", [wp_llm, exceptions, _client], ids=lambda m: m.__name__)
def test_all_is_sorted(module: ModuleType) -> None:
    assert module.__all__ == sorted(module.__all__)


@pytest.mark.parametrize("module", [wp_llm, exceptions, _client], ids=lambda m: m.__name__)
def test_all_names_resolve(module: ModuleType) -> None:
    missing = [name for name in module.__all__ if not hasattr(module, name)]

    assert missing == []


def test_top_level_exports_every_public_member() -> None:
    public = {name for name in vars(wp_llm) if not name.startswith("_")} | {"__version__"}
    # Subpackages imported as a side effect are reachable, but not part of `from wp_llm import *`.
    subpackages = {name for name in public if isinstance(getattr(wp_llm, name), ModuleType)}

    assert set(wp_llm.__all__) == public - subpackages | {"exceptions"}


def test_top_level_leaves_out_builtin_shadowing_errors() -> None:
    assert "ConnectionError" not in wp_llm.__all__
    assert "TimeoutError" not in wp_llm.__all__


def test_exceptions_exports_every_class() -> None:
    classes = {
        name
        for name, value in vars(exceptions).items()
        if isinstance(value, type)
        and issubclass(value, Exception)
        and value.__module__ == exceptions.__name__
        and not name.startswith("_")
    }

    assert set(exceptions.__all__) == classes
