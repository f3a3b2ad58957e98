"""status.json: the run's state as its supervisor last wrote it (the launch writes the first).

Fields: run_id, state, pids, created/started/ended times, exit code, progress (the trainer's
bar), first/last/final loss, saved model, failure reason and hint, stop request and notice,
datasets. The supervisor rewrites it atomically, at most once a second; readers poll it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlm_tui.core.records.folder import RunPaths, read_json, write_json_atomic
from vlm_tui.core.records.values import finite, whole


def read_status(paths: RunPaths) -> dict[str, Any]:
    """The record as written; {} when it is missing or unreadable (never an error)."""
    return read_json(paths.status) or {}


def write_status(paths: RunPaths, status: dict[str, Any]) -> None:
    write_json_atomic(paths.status, status)


class StatusWriter:
    """status.json as a dict that is rewritten atomically on every change."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = read_json(path) or {}

    def update(self, **changes: Any) -> None:
        # Called every second while training; an idle run (loading, saving) rewrites nothing.
        if all(self.data.get(key, object()) == value for key, value in changes.items()):
            return
        self.data.update(changes)
        write_json_atomic(self.path, self.data)


@dataclass(frozen=True)
class RecordedProgress:
    """The trainer's bar as the supervisor last recorded it."""

    step: int
    total: int | None
    steps_per_second: float | None
    elapsed_s: float | None
    remaining_s: float | None


def recorded_progress(status: Mapping[str, Any]) -> RecordedProgress | None:
    recorded = status.get("progress")
    if not isinstance(recorded, dict):
        return None
    step = whole(recorded.get("step"))
    if step is None:
        return None
    return RecordedProgress(
        step=step,
        total=whole(recorded.get("total")),
        steps_per_second=finite(recorded.get("steps_per_second")),
        elapsed_s=finite(recorded.get("elapsed_s")),
        remaining_s=finite(recorded.get("remaining_s")),
    )
