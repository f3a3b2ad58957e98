"""How a screen's thread worker hands work to the UI thread, and notices the app has gone."""

from __future__ import annotations

from typing import Any

from textual.app import App


def on_ui(app: App[Any], method: Any, *args: Any) -> bool:
    """Run `method(*args)` on the UI thread and wait for it; False once the app is gone (the
    worker then just ends)."""
    try:
        app.call_from_thread(method, *args)
    except RuntimeError:
        return False
    return True
