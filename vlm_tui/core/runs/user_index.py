"""The per-user index of run folders: every run this user started, wherever it was started.

It lives in the XDG state folder (`$XDG_STATE_HOME/vlm-tui/runs/`, by default
`~/.local/state/vlm-tui/runs/`) so `vlm-tui runs`, `attach`, `stop`, `try` and `merge` find a
run by name from any folder.

One small JSON file a run, named after the run and a hash of its folder, written to a sibling
and renamed over: processes and nodes creating runs at once each write a file of their own, so
none can tear or interleave another's entry (appending lines to one shared file is not atomic
on NFS, where a cluster's home folder often is), and a reader sees a whole entry or none.
Writing the same run again replaces its entry with the same content.

The index only points at run folders; it is never the run's record. A folder that is gone reads
as gone, and an index that cannot be written never stops a run: `record` returns a warning line.
"""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from vlm_tui.core.records.folder import RunPaths
from vlm_tui.core.records.index_entry_file import read_index_entry, write_index_entry

APP_FOLDER = "vlm-tui"
ENTRIES_FOLDER = "runs"
ENTRY_SUFFIX = ".json"


def state_folder(environ: Mapping[str, str]) -> Path | None:
    """vlm-tui's XDG state folder; None when no home folder is known to put it in.

    The XDG spec: an unset, empty or relative XDG_STATE_HOME means ~/.local/state.
    """
    configured = environ.get("XDG_STATE_HOME", "")
    if configured and Path(configured).is_absolute():
        return Path(configured) / APP_FOLDER
    home = environ.get("HOME", "")
    if not home or not Path(home).is_absolute():
        return None
    return Path(home) / ".local" / "state" / APP_FOLDER


def entries_folder(environ: Mapping[str, str]) -> Path | None:
    state = state_folder(environ)
    return None if state is None else state / ENTRIES_FOLDER


@dataclass(frozen=True)
class IndexedRun:
    """One entry: where a run's folder was created, and on which host."""

    paths: RunPaths
    host: str

    @property
    def gone(self) -> bool:
        """The folder holds no run record any more (deleted, moved, or on another host's disk)."""
        return not self.paths.holds_run


def entry_name(root: Path) -> str:
    """The entry's file name: the run's name (readable) and its folder's hash (unique)."""
    digest = hashlib.sha256(str(root).encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return f"{root.name}-{digest}{ENTRY_SUFFIX}"


def record(paths: RunPaths, environ: Mapping[str, str]) -> str | None:
    """Add the run to the index; a one-line warning when it cannot be, else None."""
    folder = entries_folder(environ)
    if folder is None:
        return "runs index not written: no HOME or XDG_STATE_HOME to keep it in"
    root = paths.root.resolve()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_index_entry(folder / entry_name(root), root, socket.gethostname())
    except (OSError, ValueError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        return f"runs index not written in {folder}: {reason}; find this run from its folder"
    return None


def indexed_runs(environ: Mapping[str, str] | None = None) -> list[IndexedRun]:
    """Every run in the index, oldest first by name; unreadable entries are passed over."""
    folder = entries_folder(os.environ if environ is None else environ)
    if folder is None:
        return []
    try:
        names = sorted(
            entry.name
            for entry in os.scandir(folder)
            if entry.name.endswith(ENTRY_SUFFIX) and not entry.name.startswith(".")
        )
    except OSError:
        return []
    found: dict[Path, IndexedRun] = {}
    for name in names:
        entry = read_index_entry(folder / name)
        if entry is not None:
            found[entry[0]] = IndexedRun(RunPaths(entry[0]), entry[1])
    return sorted(found.values(), key=lambda one: (one.paths.run_id, str(one.paths.root)))
