"""command.json: what was launched (argv, cwd, redacted environment) and where in the job.

Written once by the launch, before the supervisor starts; read by the supervisor, the node
recorder, the cluster table, the run index, the history and the monitor. The topology is read
here once, typed, so no reader coerces its values itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vlm_tui.core.records.folder import RunPaths, read_json, write_json_atomic
from vlm_tui.core.records.values import whole, whole_or


@dataclass(frozen=True)
class RecordedTopology:
    """Where this node's processes sit in the job, as the launch recorded it."""

    nodes: int = 1
    node_rank: int = 0
    processes_per_node: int = 1
    world_size: int | None = None  # None: an older or hand-written record without it
    global_rank: int = 0
    local_rank: int = 0
    master_addr: str | None = None
    master_port: int | None = None

    def same_job_as_node_zero(self, candidate: RecordedTopology) -> bool:
        """Whether `candidate` is node 0 of this node's job (same size and rendezvous)."""
        return (
            candidate.node_rank == 0
            and candidate.nodes == self.nodes
            and candidate.master_addr == self.master_addr
            and candidate.master_port == self.master_port
        )


def recorded_topology(command: Mapping[str, Any]) -> RecordedTopology:
    """The topology a command.json records (defaults for a record without one)."""
    return topology_of(command.get("topology"))


def topology_of(raw: object) -> RecordedTopology:
    """A recorded topology object, typed; defaults for anything missing or of a wrong type."""
    if not isinstance(raw, dict):
        return RecordedTopology()
    addr = raw.get("master_addr")
    size = whole(raw.get("world_size"))
    return RecordedTopology(
        nodes=max(whole_or(raw.get("nodes"), 1), 1),
        node_rank=whole_or(raw.get("node_rank"), 0),
        processes_per_node=max(whole_or(raw.get("processes_per_node"), 1), 1),
        world_size=size if size is not None and size > 0 else None,
        global_rank=whole_or(raw.get("global_rank"), 0),
        local_rank=whole_or(raw.get("local_rank"), 0),
        master_addr=addr if isinstance(addr, str) else None,
        master_port=whole(raw.get("master_port")),
    )


def read_command(paths: RunPaths) -> dict[str, Any] | None:
    """The record as written, or None when it is missing or unreadable."""
    return read_json(paths.command)


def write_command(paths: RunPaths, command: dict[str, Any]) -> None:
    write_json_atomic(paths.command, command)
