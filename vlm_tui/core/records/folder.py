"""The run folder: everything about one run, on disk, whoever watches.

runs/<UTC timestamp>-<name>/
  config.yml      the axolotl config the training reads
  command.json    argv, cwd, environment (secrets redacted), how to parse the output
  train.log       every byte the training printed, in order (the child writes it directly)
  metrics.jsonl   one parsed event a line: train/eval metrics, summary, checkpoints, errors
  status.json     state, pids, times, exit code, progress, first/last loss, failure reason
  stop-request    present once a graceful stop was asked (the training stops at its next step)
  stop-request.armed  written by the training when its loop starts checking for stop-request
  stop-request.taken  written by the training when it ends its loop for the stop (then it saves)

The supervisor is the only writer once a run starts; front-ends only read, which is what lets a
UI detach, come back, or die without touching the run.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RUNS_FOLDER = "runs"
# Names the run's stop-request file to the training (vlm_tui/training/graceful_stop.py).
STOP_REQUEST_VARIABLE = "VLM_TUI_STOP_FILE"


def armed_marker(stop_request: Path) -> Path:
    """Where the training says it checks `stop_request` from now on (its loop has started)."""
    return stop_request.with_name(stop_request.name + ".armed")


def taken_marker(stop_request: Path) -> Path:
    """Where the training says it took the stop: its loop is ending, the saves are under way."""
    return stop_request.with_name(stop_request.name + ".taken")


TERMINAL_STATES = frozenset({"finished", "failed", "stopped", "dry_run"})


@dataclass(frozen=True)
class RunPaths:
    root: Path

    @property
    def run_id(self) -> str:
        return self.root.name

    @property
    def holds_run(self) -> bool:
        """The folder holds a run's record (a command.json or status.json); a run whose folder
        was deleted or moved does not."""
        return self.status.exists() or self.command.exists()

    @property
    def config(self) -> Path:
        return self.root / "config.yml"

    @property
    def command(self) -> Path:
        return self.root / "command.json"

    @property
    def log(self) -> Path:
        return self.root / "train.log"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def status(self) -> Path:
        return self.root / "status.json"

    @property
    def stop_request(self) -> Path:
        # Written by the supervisor on a graceful stop; the training checks for it every step.
        return self.root / "stop-request"

    @property
    def stop_armed(self) -> Path:
        return armed_marker(self.stop_request)

    @property
    def stop_taken(self) -> Path:
        return taken_marker(self.stop_request)

    @property
    def supervisor_log(self) -> Path:
        # The supervisor's own complaints, kept apart so train.log is exactly the child's bytes.
        return self.root / "supervisor.log"


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def moment_of(value: object) -> datetime | None:
    """A time as `iso` wrote it, read back; None when missing or unreadable."""
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def runtime_s(status: Mapping[str, Any], now: datetime | None = None) -> float | None:
    """Seconds from status.json's start to its end (to `now` for a run not ended yet, when
    given); None when a time is missing or unreadable."""
    started = moment_of(status.get("started_at"))
    ended = moment_of(status.get("ended_at")) or now
    return (ended - started).total_seconds() if started and ended else None


def create_run_folder(runs_root: Path, name: str, moment: datetime) -> RunPaths:
    """A new, empty run folder; never reuses an existing one (a suffix breaks ties)."""
    runs_root.mkdir(parents=True, exist_ok=True)
    stamp = moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    for attempt in range(1, 1000):
        suffix = "" if attempt == 1 else f"-{attempt}"
        root = runs_root / f"{stamp}-{name}{suffix}"
        try:
            root.mkdir()
        except FileExistsError:
            continue
        return RunPaths(root)
    raise FileExistsError(f"no free run folder name for {name!r} under {runs_root}")


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Readers never see half a file: write a sibling, then rename over."""
    text = json.dumps(data, indent=2, sort_keys=False, allow_nan=False, default=str)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text + "\n")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def read_json(path: Path) -> dict[str, Any] | None:
    """The file's object, or None if it is missing or unreadable (a reader must never crash)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


# Each node's telemetry and heartbeat (written by supervise.node_recorder, read by runs.cluster).
TELEMETRY_FOLDER = "telemetry"
HEARTBEAT_INTERVAL_S = 1.0
_UNSAFE_IN_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def safe_host(host: str) -> str:
    """A host name fit for a file name: letters, digits, '.', '_' and '-' only."""
    cleaned = _UNSAFE_IN_NAME.sub("_", host).strip("._-")[:64]
    return cleaned or "host"


def node_file_stem(node_rank: int, host: str) -> str:
    return f"node{node_rank}-{safe_host(host)}"


def telemetry_folder(run_root: Path) -> Path:
    return run_root / TELEMETRY_FOLDER
