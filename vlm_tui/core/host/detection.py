"""Single process or distributed, decided from the environment exactly as the guide states it.

The guide's rule: any of MASTER_ADDR, RANK, WORLD_SIZE, LOCAL_RANK present (and non-empty)
means a distributed launch. The lines printed here are the guide's, character for character,
so users can match them against its Verification section.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from vlm_tui.core.host.topology import INSIDE_LAUNCHER, Topology

GUIDE_VARIABLES = ("MASTER_ADDR", "RANK", "WORLD_SIZE", "LOCAL_RANK")
SINGLE_LINE = "🖥️  Single GPU mode - running without distributed setup"
DISTRIBUTED_LINE = "🌐 Detected distributed environment - using accelerate launch"


@dataclass(frozen=True)
class Detection:
    distributed: bool
    # The guide's variables that are set, in the guide's order, with their values.
    variables: tuple[tuple[str, str], ...] = ()


def detect(environ: Mapping[str, str]) -> Detection:
    present = tuple(
        (name, environ[name]) for name in GUIDE_VARIABLES if environ.get(name, "").strip()
    )
    return Detection(distributed=bool(present), variables=present)


def _variable_lines(head: str, variables: tuple[tuple[str, str], ...]) -> list[str]:
    return [head] + [f"  {name}: {value}" for name, value in variables]


def detection_lines(detection: Detection) -> list[str]:
    """The guide's lines for its own rule, character for character."""
    if not detection.distributed:
        return [SINGLE_LINE]
    return _variable_lines(DISTRIBUTED_LINE, detection.variables)


def command_line(shown_command: str) -> str:
    return f"Training command: {shown_command}"


INSIDE_LAUNCHER_LINE = (
    "🌐 Detected distributed environment - already started by {source}:"
    " running the trainer directly"
)
SOURCE_NAMES = {
    "torchrun": "torchrun",
    "open_mpi": "Open MPI",
    "pmi": "MPI (PMI)",
    "mvapich": "MVAPICH",
    "slurm": "srun",
}


def topology_lines(topology: Topology, detection: Detection, port: int | None) -> list[str]:
    """The guide's lines where the guide describes the case, and what we derived below them."""
    if topology.mode == INSIDE_LAUNCHER:
        head = INSIDE_LAUNCHER_LINE.format(
            source=SOURCE_NAMES.get(topology.source, topology.source)
        )
        return _variable_lines(head, topology.evidence)
    if not topology.uses_accelerate:
        return [SINGLE_LINE]
    if topology.source == "guide" and detection.distributed:
        lines = detection_lines(detection)
    else:
        # Another cluster's variables (or NODE_RANK, which the guide's rule ignores).
        lines = _variable_lines(DISTRIBUTED_LINE, topology.evidence)
    nodes = _count(topology.nodes, "node")
    per_node = _count(topology.processes_per_node, "process", "processes")
    lines.append(
        f"  => {nodes} x {per_node} = {topology.world_size} processes;"
        f" this node: {topology.node_rank}; master: {topology.master_addr}:{port}"
    )
    origins = [
        f"{ORIGIN_LABELS.get(key, key)} from {origin}"
        for key, origin in topology.origins.items()
        if origin != "default"
    ]
    if topology.master_port is None:
        origins.append("port picked free at launch")
    if origins:
        lines.append(f"     ({'; '.join(origins)})")
    return lines


ORIGIN_LABELS = {
    "nodes": "nodes",
    "node_rank": "node rank",
    "processes_per_node": "processes per node",
    "master_addr": "master",
    "master_port": "port",
    "world_size": "world size",
    "global_rank": "rank",
    "local_rank": "local rank",
}


def _count(number: int, word: str, plural: str = "") -> str:
    return f"{number} {word if number == 1 else (plural or word + 's')}"


def verification_lines(
    world_size: int, global_rank: int, local_rank: int, now: datetime
) -> list[str]:
    """The guide's 'Verify Distributed Training' lines, stamped with the launch time."""
    stamp = now.strftime("[%Y-%m-%d %H:%M:%S] [INFO]")
    return [
        f"{stamp} Distributed training detected",
        f"{stamp} World size: {world_size}",
        f"{stamp} Global rank: {global_rank}",
        f"{stamp} Local rank: {local_rank}",
        f"{stamp} Distributed training with {world_size} processes",
    ]
