"""The `wp-llm` command: run the service, manage keys, publish test events."""

from __future__ import annotations

from wp_llm.cli._app import app, main

__all__ = ["app", "main"]
