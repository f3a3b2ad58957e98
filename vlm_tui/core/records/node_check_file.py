"""What each node of a multi-node run trains with, and node 0's verdict on it.

Both live in node 0's run folder (the one every node's telemetry goes to):

  node-check/node<rank>-<host>.json  one node's record: rank, host, the versions of the
                                     packages that must agree, the hash of its config
  node-check/verdict.json            node 0's word once it compared them: "same", "refused"
                                     (with the one line naming the node and the difference)
                                     or "skipped" (with why); the other nodes wait for it
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlm_tui.core.records.folder import node_file_stem, read_json, write_json_atomic

NODE_CHECK_FOLDER = "node-check"
VERDICT_NAME = "verdict.json"
SAME, REFUSED, SKIPPED = "same", "refused", "skipped"


@dataclass(frozen=True)
class NodeRecord:
    node_rank: int
    host: str
    # Package name -> version ("not installed" for one that is missing).
    versions: dict[str, str]
    config_sha256: str


@dataclass(frozen=True)
class Verdict:
    outcome: str  # SAME, REFUSED or SKIPPED
    line: str


def node_check_folder(run_root: Path) -> Path:
    return run_root / NODE_CHECK_FOLDER


def write_node_record(run_root: Path, record: NodeRecord) -> Path:
    folder = node_check_folder(run_root)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{node_file_stem(record.node_rank, record.host)}.json"
    write_json_atomic(
        path,
        {
            "node_rank": record.node_rank,
            "host": record.host,
            "versions": record.versions,
            "config_sha256": record.config_sha256,
        },
    )
    return path


def _node_record(raw: dict[str, Any] | None) -> NodeRecord | None:
    if raw is None:
        return None
    rank, host, versions = raw.get("node_rank"), raw.get("host"), raw.get("versions")
    digest = raw.get("config_sha256")
    if (
        not isinstance(rank, int)
        or isinstance(rank, bool)
        or not isinstance(host, str)
        or not isinstance(versions, dict)
        or not isinstance(digest, str)
    ):
        return None
    return NodeRecord(rank, host, {str(k): str(v) for k, v in versions.items()}, digest)


def read_node_records(run_root: Path) -> dict[int, NodeRecord]:
    """Every node's record so far, by node rank (unreadable or half-written ones are skipped;
    of two records claiming one rank, the first by file name)."""
    records: dict[int, NodeRecord] = {}
    try:
        paths = sorted(node_check_folder(run_root).glob("node*.json"))
    except OSError:
        return records
    for path in paths:
        record = _node_record(read_json(path))
        if record is not None:
            records.setdefault(record.node_rank, record)
    return records


def write_verdict(run_root: Path, verdict: Verdict) -> None:
    folder = node_check_folder(run_root)
    folder.mkdir(parents=True, exist_ok=True)
    write_json_atomic(folder / VERDICT_NAME, {"outcome": verdict.outcome, "line": verdict.line})


def read_verdict(run_root: Path) -> Verdict | None:
    raw = read_json(node_check_folder(run_root) / VERDICT_NAME)
    if raw is None:
        return None
    outcome, line = raw.get("outcome"), raw.get("line")
    if outcome not in (SAME, REFUSED, SKIPPED) or not isinstance(line, str):
        return None
    return Verdict(str(outcome), line)
