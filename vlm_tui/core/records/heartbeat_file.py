"""telemetry/node<rank>-<host>.json: each node's heartbeat, and .jsonl: its samples.

Written by each node's recorder (`supervise/node_recorder`) about once a second, read by the
cluster table and by a node looking for node 0's run folder.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import IO, Any

from vlm_tui.core.records.folder import read_json, telemetry_folder, write_json_atomic

_HEARTBEAT_NAME = re.compile(r"^node\d+-.+\.json$")


def read_heartbeat(path: Path) -> dict[str, Any] | None:
    return read_json(path)


def write_heartbeat(path: Path, beat: dict[str, Any]) -> None:
    write_json_atomic(path, beat)


def append_sample(lines: IO[str], sample: dict[str, Any]) -> None:
    lines.write(json.dumps(sample, allow_nan=False) + "\n")


def read_heartbeats(folder: Path, pattern: str | None = None) -> list[dict[str, Any]]:
    """Every node's latest heartbeat in `folder`'s telemetry (those matching a glob `pattern`,
    when given); those of nodes that moved on to node 0's folder are left out."""
    try:
        entries = sorted(
            telemetry_folder(folder).glob(pattern)
            if pattern
            else telemetry_folder(folder).iterdir()
        )
    except OSError:
        return []
    beats = []
    for entry in entries:
        if not _HEARTBEAT_NAME.match(entry.name):
            continue
        beat = read_json(entry)
        if beat is not None and not beat.get("moved_to"):
            beats.append(beat)
    return beats
