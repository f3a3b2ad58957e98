"""The cluster table: one row per node of a run, read from the heartbeats in its run folder.

Only reads. Each node's supervisor writes `telemetry/node<rank>-<host>.json` (see
`supervise/node_recorder`) into node 0's run folder; a node other than 0 names that folder in
its own status.json (`cluster_run`), so the table is the same whichever node's run is asked
about.

Flags, judged by the reader:
- `lost`: the heartbeat is older than LOST_AFTER_BEATS intervals and its last state is not an end;
- `idle GPUs`: a live node's GPUs sit near 0% while the other nodes' average is high;
- `no record`: a node the topology expects has written no heartbeat.
When a node runs and no other node ever wrote a heartbeat here, runs/ is most likely not on
shared storage: the view says so in one line and shows this node only.

Heartbeat ages: a one-shot read (`vlm-tui status`) compares the heartbeat's wall time with this
machine's clock. A screen that reads again and again passes a `HeartbeatTracker`, which judges
staleness by its own monotonic clock since a node's `seq` last changed, so clocks that disagree
between nodes cannot make a live node look lost (or a dead one live).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from vlm_tui.core.records.command_file import read_command, recorded_topology
from vlm_tui.core.records.folder import HEARTBEAT_INTERVAL_S, TERMINAL_STATES, RunPaths
from vlm_tui.core.records.heartbeat_file import read_heartbeats
from vlm_tui.core.records.status_file import read_status
from vlm_tui.core.records.values import finite, whole_or
from vlm_tui.core.text.table import aligned

LOST_AFTER_BEATS = 3
IDLE_GPU_PCT = 5.0
BUSY_GPU_PCT = 50.0
# A node must have beaten this often before the silence of the others means anything: at the
# start the other nodes may simply not have found node 0's folder yet.
NOT_SHARED_AFTER_BEATS = 5
HOST_CELLS = 24

LOST = "lost"
IDLE_GPUS = "idle GPUs"
NO_RECORD = "no record"
NOT_SHARED_NOTE = (
    "no other node writes into this run folder: runs/ is not on shared storage?"
    " showing this node only"
)


@dataclass(frozen=True)
class NodeRow:
    """One node as its last heartbeat describes it; numbers None where it could not say."""

    node_rank: int
    host: str | None
    gpus: int | None
    gpu_util_pct: float | None  # the average over the node's GPUs
    gpu_memory_used_mib: float | None
    gpu_memory_total_mib: float | None
    cpu_pct: float | None
    net_rx_bytes_per_s: float | None
    net_tx_bytes_per_s: float | None
    heartbeat_age_s: float | None
    state: str
    flag: str  # "", LOST, IDLE_GPUS or NO_RECORD
    local: bool  # the node whose run folder was asked about

    @property
    def ended(self) -> bool:
        return self.state in TERMINAL_STATES


@dataclass(frozen=True)
class ClusterView:
    run: RunPaths  # the run asked about
    folder: Path  # where the heartbeats were read
    nodes: int  # how many nodes the run's topology expects
    rows: tuple[NodeRow, ...]
    note: str  # "" or one line, e.g. NOT_SHARED_NOTE


class HeartbeatTracker:
    """Heartbeat ages by this reader's monotonic clock, from when each node's seq last moved.

    A new seq was written between this reader's previous look and now; within that window the
    writer's wall time places it (exactly, when the clocks agree), and a writer's clock that is
    off cannot move it outside the window. So a live node never looks lost, and a dead one is
    flagged as soon after its last beat as the clocks allow.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        # Per node: the seq last seen, when it was written (reader's clock), when last looked.
        self._seen: dict[tuple[int, str], tuple[object, float, float]] = {}

    def age(self, key: tuple[int, str], seq: object, wall_age_s: float) -> float:
        now = self._clock()
        seen = self._seen.get(key)
        if seen is None:
            # First sight: all there is to go on is the writer's clock.
            written = now - wall_age_s
        elif seen[0] != seq:
            written = min(max(now - wall_age_s, seen[2]), now)
        else:
            written = seen[1]
        self._seen[key] = (seq, written, now)
        return now - written


def _sum(values: Sequence[float | None]) -> float | None:
    known = [value for value in values if value is not None]
    return sum(known) if known else None


def _run_named(runs: Path, name: object) -> RunPaths | None:
    """The run folder `name` in `runs`, if a recorded value names one there and nothing else."""
    if not isinstance(name, str) or not name or "/" in name or name in (".", ".."):
        return None
    return RunPaths(runs / name)


def cluster_folder(paths: RunPaths, status: dict[str, Any] | None = None) -> Path:
    """Node 0's run folder, where the run's nodes write their heartbeats."""
    status = read_status(paths) if status is None else status
    named = _run_named(paths.root.parent, status.get("cluster_run"))
    if named is not None and named.root.is_dir():
        return named.root
    return paths.root


def _recorded_end(runs: Path, run: object) -> str | None:
    """The end state the node's own status.json records, if it records one."""
    named = _run_named(runs, run)
    if named is None:
        return None
    state = read_status(named).get("state")
    return state if state in TERMINAL_STATES else None


def _row(
    beat: dict[str, Any],
    *,
    own_rank: int,
    now: float,
    tracker: HeartbeatTracker | None,
    runs: Path,
) -> NodeRow:
    rank = whole_or(beat.get("node_rank"), -1)
    host = str(beat.get("host") or "?")
    gpus = [gpu for gpu in beat.get("gpus") or [] if isinstance(gpu, dict)]
    utils = [finite(gpu.get("utilization_pct")) for gpu in gpus]
    known_utils = [util for util in utils if util is not None]
    state = str(beat.get("state") or "unknown")
    stamp = finite(beat.get("time"))
    wall_age = max(now - stamp, 0.0) if stamp is not None else math.inf
    if tracker is not None and stamp is not None:
        age = tracker.age((rank, host), beat.get("seq"), wall_age)
    else:
        age = wall_age
    interval = finite(beat.get("interval_s")) or HEARTBEAT_INTERVAL_S
    lost = state not in TERMINAL_STATES and age > LOST_AFTER_BEATS * interval
    if lost:
        # A last beat skipped (a driver reading hung at the end) leaves the heartbeat at
        # "running"; the node's status.json still records how its run ended.
        ended = _recorded_end(runs, beat.get("run"))
        if ended is not None:
            state, lost = ended, False
    return NodeRow(
        node_rank=rank,
        host=host,
        gpus=len(gpus),
        gpu_util_pct=sum(known_utils) / len(known_utils) if known_utils else None,
        gpu_memory_used_mib=_sum([finite(gpu.get("memory_used_mib")) for gpu in gpus]),
        gpu_memory_total_mib=_sum([finite(gpu.get("memory_total_mib")) for gpu in gpus]),
        cpu_pct=finite(beat.get("cpu_pct")),
        net_rx_bytes_per_s=finite(beat.get("net_rx_bytes_per_s")),
        net_tx_bytes_per_s=finite(beat.get("net_tx_bytes_per_s")),
        heartbeat_age_s=age if math.isfinite(age) else None,
        state=state,
        flag=LOST if lost else "",
        local=rank == own_rank,
    )


def _missing(rank: int, own_rank: int) -> NodeRow:
    return NodeRow(
        node_rank=rank,
        host=None,
        gpus=None,
        gpu_util_pct=None,
        gpu_memory_used_mib=None,
        gpu_memory_total_mib=None,
        cpu_pct=None,
        net_rx_bytes_per_s=None,
        net_tx_bytes_per_s=None,
        heartbeat_age_s=None,
        state="-",
        flag=NO_RECORD,
        local=rank == own_rank,
    )


def _flag_idle_gpus(rows: list[NodeRow]) -> list[NodeRow]:
    """A live node whose GPUs idle while the other live nodes' GPUs work."""
    utils: dict[int, float] = {
        index: row.gpu_util_pct
        for index, row in enumerate(rows)
        if row.gpus and row.gpu_util_pct is not None and not row.ended and not row.flag
    }
    flagged = []
    for index, row in enumerate(rows):
        others = [util for other, util in utils.items() if other != index]
        idle = (
            index in utils
            and utils[index] <= IDLE_GPU_PCT
            and bool(others)
            and sum(others) / len(others) >= BUSY_GPU_PCT
        )
        flagged.append(replace(row, flag=IDLE_GPUS) if idle else row)
    return flagged


def cluster_view(
    paths: RunPaths, *, now: float | None = None, tracker: HeartbeatTracker | None = None
) -> ClusterView:
    """The run's nodes as their heartbeats describe them, with flags and at most one note."""
    now = time.time() if now is None else now
    topology = recorded_topology(read_command(paths) or {})
    nodes, own_rank = topology.nodes, topology.node_rank
    status = read_status(paths)
    folder = cluster_folder(paths, status)
    beats = read_heartbeats(folder)
    if folder != paths.root:
        # Written before this node found node 0's folder, if it moved on (then left out).
        beats += read_heartbeats(paths.root)
    rows = [
        _row(beat, own_rank=own_rank, now=now, tracker=tracker, runs=folder.parent)
        for beat in beats
    ]
    note = ""
    own = [row for row in rows if row.local]
    others = [row for row in rows if not row.local]
    if nodes > 1 and own and not others:
        own_beats = max(whole_or(beat.get("seq"), 0) for beat in beats)
        if own_beats >= NOT_SHARED_AFTER_BEATS or all(row.ended for row in own):
            note = NOT_SHARED_NOTE
    if not note:
        seen = {row.node_rank for row in rows}
        rows += [_missing(rank, own_rank) for rank in range(nodes) if rank not in seen]
    rows = _flag_idle_gpus(rows)
    rows.sort(key=lambda row: (row.node_rank, row.host or ""))
    return ClusterView(run=paths, folder=folder, nodes=nodes, rows=tuple(rows), note=note)


# ---- text -----------------------------------------------------------------------------------


def _gib(used: float | None, total: float | None) -> str:
    if used is None and total is None:
        return "-"
    used_text = "?" if used is None else f"{used / 1024:.1f}"
    total_text = "?" if total is None else f"{total / 1024:.1f}"
    return f"{used_text}/{total_text} GiB"


def _rate(bytes_per_s: float | None) -> str:
    if bytes_per_s is None:
        return "-"
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if bytes_per_s >= size:
            return f"{bytes_per_s / size:.1f}{unit}B/s"
    return f"{bytes_per_s:.0f}B/s"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}%"


def heartbeat_text(row: NodeRow) -> str:
    """How long ago the node last beat; an ended node's age says nothing, so it says so."""
    if row.flag == NO_RECORD:
        return "never"
    if row.ended:
        return "ended"
    age = row.heartbeat_age_s
    if age is None:
        return "?"
    if age < 60:
        return f"{age:.0f}s ago" if age >= 10 else f"{age:.1f}s ago"
    if age < 3600:
        return f"{age / 60:.0f}m ago"
    return f"{age / 3600:.0f}h ago"


def _host(host: str | None) -> str:
    if host is None:
        return "-"
    return host if len(host) <= HOST_CELLS else host[: HOST_CELLS - 1] + "…"


HEADER: tuple[str, ...] = (
    "NODE",
    "HOST",
    "GPUS",
    "GPU UTIL",
    "GPU MEM",
    "CPU",
    "NET RX/TX",
    "HEARTBEAT",
    "STATE",
    "FLAG",
)


def row_cells(row: NodeRow) -> tuple[str, ...]:
    """The table's cells for one node, in HEADER's order."""
    net = "-"
    if row.net_rx_bytes_per_s is not None or row.net_tx_bytes_per_s is not None:
        net = f"{_rate(row.net_rx_bytes_per_s)} {_rate(row.net_tx_bytes_per_s)}"
    return (
        str(row.node_rank),
        _host(row.host),
        "-" if row.gpus is None else str(row.gpus),
        _pct(row.gpu_util_pct) if row.gpus else "-",
        _gib(row.gpu_memory_used_mib, row.gpu_memory_total_mib) if row.gpus else "-",
        _pct(row.cpu_pct),
        net,
        heartbeat_text(row),
        row.state,
        row.flag,
    )


def table_lines(view: ClusterView) -> list[str]:
    """The cluster table as aligned text: a header, one line per node, then the note."""
    lines = aligned([HEADER, *(row_cells(row) for row in view.rows)])
    if view.note:
        lines.append(view.note)
    return lines
