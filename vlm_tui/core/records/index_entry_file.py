"""<state folder>/runs/<run>-<hash>.json: one entry of the per-user runs index.

Written by `runs/user_index.record` when a run folder is created, read by `indexed_runs`: where
the run's folder is and which host created it. Not a run folder's file: the index only points
at run folders.
"""

from __future__ import annotations

from pathlib import Path

from vlm_tui.core.records.folder import iso, read_json, utc_now, write_json_atomic


def write_index_entry(path: Path, run_root: Path, host: str) -> None:
    """The entry, written whole or not at all (a sibling renamed over)."""
    write_json_atomic(
        path,
        {
            "run_id": run_root.name,
            "folder": str(run_root),
            "host": host,
            "recorded_at": iso(utc_now()),
        },
    )


def read_index_entry(path: Path) -> tuple[Path, str] | None:
    """The run folder (absolute) and host an entry names; None when it is unreadable."""
    data = read_json(path) or {}
    folder, host = data.get("folder"), data.get("host")
    if not isinstance(folder, str) or not Path(folder).is_absolute():
        return None
    return Path(folder), str(host or "?")
