"""This node's telemetry and heartbeat, recorded into the run folder about once a second.

The supervisor runs one `NodeRecorder` in a daemon thread of its own, so a flood of output being
parsed never delays a heartbeat. It writes, under `telemetry/`:

  node<rank>-<host>.jsonl  one sample a line: wall time, seq, the run's state, every GPU, CPU,
                           RAM, network bytes/s, and the CPU, RSS and GPU memory of the run's
                           own processes
  node<rank>-<host>.json   the heartbeat: the latest sample plus who wrote it (node rank, host,
                           pid, run folder, interval), rewritten atomically; `seq` grows by one a
                           beat, so a reader sees a node stop even when the clocks of two nodes
                           disagree

The node rank and the host are both in the name: two nodes on one host, or a node rank given
twice by mistake, never share a file.

Node 0 writes into its own run folder. Every other node writes into node 0's, which it finds
under the same runs/ folder (the guide asks for shared storage): the nodes start in any order,
so until it is found the recorder writes into its own run folder and keeps looking, once a beat;
then it carries over what it wrote, goes on in node 0's folder, and tells the supervisor, which
records `cluster_run` in its status.json. When node 0's folder never appears, runs/ is not
shared, and the readers say so.

Nothing here may take the supervisor down: every beat fails soft and a failure is noted once
in supervisor.log.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import sys
import threading
import time
from collections.abc import Callable, Collection, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from vlm_tui.core.host.telemetry import (
    NetworkSample,
    ProcessTreeSample,
    Telemetry,
    TelemetrySample,
)
from vlm_tui.core.records.command_file import (
    RecordedTopology,
    read_command,
    recorded_topology,
)
from vlm_tui.core.records.folder import (
    HEARTBEAT_INTERVAL_S,
    TERMINAL_STATES,
    RunPaths,
    iso,
    moment_of,
    node_file_stem,
    telemetry_folder,
    utc_now,
)
from vlm_tui.core.records.heartbeat_file import (
    append_sample,
    read_heartbeat,
    read_heartbeats,
    write_heartbeat,
)
from vlm_tui.core.records.status_file import read_status

# Node 0's run folder is looked for among those created this long before or after this node's
# own: the longest rendezvous timeout, the most two nodes of one job can start apart.
DISCOVERY_WINDOW_S = 86_400.0
# The clocks of two nodes may disagree by this much.
CLOCK_SLACK_S = 60.0
# A node-0 run whose own heartbeat is this old, without a recorded end, is a dead earlier job.
STALE_MASTER_S = 60.0
# Distinct failures written to supervisor.log; a failure repeating every second is noted once.
MAX_NOTES = 20
# Run folders are named <UTC stamp>-<name>[-N] (records.folder.create_run_folder).
_STAMP = re.compile(r"^(\d{8}T\d{6}Z)-(.+)$")
# One decimal is plenty for MiB, percent, watts and degrees, and keeps the lines short.
_DECIMALS = 1


def _round(value: float | None, digits: int = _DECIMALS) -> float | None:
    return None if value is None else round(value, digits)


def sample_record(
    sample: TelemetrySample,
    network: NetworkSample,
    tree: ProcessTreeSample,
    *,
    seq: int,
    wall_time: float,
    state: str,
) -> dict[str, Any]:
    """One line of the node's .jsonl file (the heartbeat adds who wrote it)."""
    run_memory = dict(tree.gpu_memory_mib)
    host = sample.host
    return {
        "time": round(wall_time, 3),
        "seq": seq,
        "state": state,
        "gpus": [
            {
                "index": gpu.index,
                "name": gpu.name,
                "utilization_pct": _round(gpu.utilization_pct),
                "memory_used_mib": _round(gpu.memory_used_mib),
                "memory_total_mib": _round(gpu.memory_total_mib),
                "temperature_c": _round(gpu.temperature_c),
                "power_w": _round(gpu.power_w),
                "run_memory_mib": _round(run_memory.get(gpu.index)),
            }
            for gpu in sample.gpus
        ],
        "gpu_note": sample.gpu_note,
        "cpu_pct": _round(host.cpu_pct),
        "ram_used_mib": _round(host.ram_used_mib),
        "ram_total_mib": _round(host.ram_total_mib),
        "net_rx_bytes_per_s": _round(network.rx_bytes_per_s, 0),
        "net_tx_bytes_per_s": _round(network.tx_bytes_per_s, 0),
        "run_processes": tree.processes,
        "run_cpu_pct": _round(tree.cpu_pct),
        "run_rss_mib": _round(tree.rss_mib),
    }


def _stamp_seconds(run_id: str) -> float | None:
    """The creation time in a run folder's name, as epoch seconds."""
    match = _STAMP.match(run_id)
    if match is None:
        return None
    try:
        return datetime.strptime(match.group(1) + "+0000", "%Y%m%dT%H%M%SZ%z").timestamp()
    except ValueError:
        return None


def _base_name(run_id: str, node_rank: int) -> str:
    """The job's name in a run folder's name: no stamp, no -node<k>, no -N tie-breaker."""
    match = _STAMP.match(run_id)
    name = match.group(2) if match else run_id
    if node_rank > 0:
        name = re.sub(rf"-node{node_rank}(-\d+)?$", "", name)
    return name


def _master_heartbeat_stale(root: Path, now: float) -> bool:
    """Whether node 0 of that run stopped beating long ago without recording an end."""
    for beat in read_heartbeats(root, "node0-*.json"):
        stamp = beat.get("time")
        if beat.get("state") in TERMINAL_STATES or not isinstance(stamp, int | float):
            continue
        return now - stamp > STALE_MASTER_S
    return False


def find_master_run(
    own: RunPaths,
    topology: RecordedTopology,
    created_at: datetime | None,
    rejected: set[str] | None = None,
    now: float | None = None,
) -> RunPaths | None:
    """Node 0's run folder of the job `own` belongs to, beside it under the same runs/.

    A candidate is a run of node 0 with the same node count, master address and port, created
    within DISCOVERY_WINDOW_S of this node's run and not ended before it began; among several,
    one of the same name wins, then the newest. `rejected` remembers folders that can never
    match (their command.json never changes), so looking again every second stays cheap.
    """
    rejected = rejected if rejected is not None else set()
    now = time.time() if now is None else now
    # A job's node records inside node 0's folder (records.job_file): that folder is the master's.
    parent = RunPaths(own.root.parent)
    command = read_command(parent)
    if command is not None and topology.same_job_as_node_zero(recorded_topology(command)):
        return parent
    own_created = created_at.timestamp() if created_at else _stamp_seconds(own.run_id)
    own_base = _base_name(own.run_id, topology.node_rank)
    try:
        entries = list(own.root.parent.iterdir())
    except OSError:
        return None
    best: tuple[bool, float, str] | None = None
    found: RunPaths | None = None
    for entry in entries:
        name = entry.name
        if name == own.run_id or name in rejected:
            continue
        stamp = _stamp_seconds(name)
        if stamp is None or (
            own_created is not None and abs(stamp - own_created) > DISCOVERY_WINDOW_S
        ):
            rejected.add(name)
            continue
        candidate = RunPaths(entry)
        command = read_command(candidate)
        if command is None:
            continue  # not a run folder yet, or still being written
        if not topology.same_job_as_node_zero(recorded_topology(command)):
            rejected.add(name)
            continue
        status = read_status(candidate)
        ended = moment_of(status.get("ended_at"))
        if (
            ended is not None
            and created_at is not None
            and ended.timestamp() < created_at.timestamp() - CLOCK_SLACK_S
        ):
            rejected.add(name)
            continue
        if ended is None and _master_heartbeat_stale(entry, now):
            continue
        base = _base_name(name, 0)
        same_name = base == own_base or re.fullmatch(re.escape(own_base) + r"-\d+", base)
        rank = (bool(same_name), stamp, name)
        if best is None or rank > best:
            best, found = rank, RunPaths(entry)
    return found


def _note_to_stderr(text: str) -> None:
    # The supervisor's stdout and stderr are its supervisor.log.
    print(f"[vlm-tui telemetry] {iso(utc_now())} {text}", file=sys.stderr, flush=True)


class NodeRecorder:
    """Samples this node once a beat and writes its .jsonl line and heartbeat."""

    def __init__(
        self,
        paths: RunPaths,
        topology: RecordedTopology,
        *,
        state: Callable[[], str],
        pids: Callable[[], Collection[int]] = tuple,
        telemetry: Telemetry | None = None,
        host: str | None = None,
        interval_s: float = HEARTBEAT_INTERVAL_S,
        note: Callable[[str], None] = _note_to_stderr,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.paths = paths
        self.topology = topology
        self.node_rank = topology.node_rank
        self.nodes = topology.nodes
        self.host = host if host is not None else socket.gethostname()
        self.stem = node_file_stem(self.node_rank, self.host)
        self.interval_s = interval_s
        self._state = state
        self._pids = pids
        self._telemetry = telemetry if telemetry is not None else Telemetry()
        self._note = note
        self._wall_clock = wall_clock
        self._created_at = moment_of(read_status(paths).get("created_at"))
        # Where the files go: this run's own folder until node 0's is found.
        self._root = paths.root
        self._cluster_run: str | None = None
        self._searching = self.node_rank > 0 and self.nodes > 1
        self._rejected: set[str] = set()
        self._seq = 0
        self._last_record: dict[str, Any] | None = None
        self._ended = False
        self._noted: set[str] = set()
        self._beat_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def cluster_run(self) -> str | None:
        """Node 0's run folder name, once this node (rank > 0) writes there."""
        return self._cluster_run

    @property
    def heartbeat_path(self) -> Path:
        return telemetry_folder(self._root) / f"{self.stem}.json"

    @property
    def samples_path(self) -> Path:
        return telemetry_folder(self._root) / f"{self.stem}.jsonl"

    def start(self) -> None:
        """Beat in a daemon thread: it never keeps a finished supervisor alive."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="node-telemetry", daemon=True)
        self._thread.start()

    def stop(self, final_state: str, timeout_s: float = 5.0) -> None:
        """Stop beating and write a last heartbeat with the run's end state.

        The last one repeats the last readings (no new driver call), so the end of a run can
        never hang on the GPU driver.
        """
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout_s)
        if thread is not None and thread.is_alive():
            # A beat stuck on the driver: better no last heartbeat than a run that never ends.
            self._ended = True
            self._noted_once("no last heartbeat: a reading of this node hangs")
            return
        with self._beat_lock:
            self._safely(lambda: self._write_last(final_state))
            self._ended = True
        self._safely(self._telemetry.close)

    def beat(self) -> None:
        """One sample, one line, one heartbeat (the thread calls this once an interval)."""
        with self._beat_lock:
            if not self._ended:
                self._beat_locked()

    def _loop(self) -> None:
        due = time.monotonic()
        while not self._stop.is_set():
            self._safely(self.beat)
            now = time.monotonic()
            # A slow beat is not followed by a burst of catch-up beats.
            due = max(due + self.interval_s, now)
            self._stop.wait(due - now)

    def _safely(self, action: Callable[[], None]) -> None:
        try:
            action()
        except Exception as error:
            self._noted_once(f"{type(error).__name__}: {error}")

    def _noted_once(self, text: str) -> None:
        if text in self._noted or len(self._noted) >= MAX_NOTES:
            return
        self._noted.add(text)
        # Should even that fail, there is nowhere left to say it.
        with contextlib.suppress(Exception):
            self._note(text)

    def _beat_locked(self) -> None:
        state = self._state()
        if self._searching:
            self._safely(self._look_for_master)
        telemetry = self._telemetry
        sample = telemetry.sample()
        network = telemetry.network()
        tree = telemetry.process_tree(self._pids())
        if self._ended:
            return  # stopped while reading: the end state is already written
        self._seq += 1
        record = sample_record(
            sample, network, tree, seq=self._seq, wall_time=self._wall_clock(), state=state
        )
        self._write(record)

    def _write_last(self, final_state: str) -> None:
        if self._last_record is None:
            self._beat_locked()  # never beat yet: read once
        if self._last_record is None:
            return
        if self._searching:
            self._safely(self._look_for_master)
        self._seq += 1
        self._write(
            {
                **self._last_record,
                "time": round(self._wall_clock(), 3),
                "seq": self._seq,
                "state": final_state,
            }
        )

    def _write(self, record: dict[str, Any]) -> None:
        self._last_record = record
        folder = telemetry_folder(self._root)
        folder.mkdir(parents=True, exist_ok=True)
        with self.samples_path.open("a", encoding="utf-8") as lines:
            append_sample(lines, record)
        write_heartbeat(self.heartbeat_path, self._heartbeat(record))

    def _heartbeat(self, record: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "node_rank": self.node_rank,
            "nodes": self.nodes,
            "host": self.host,
            "pid": os.getpid(),
            "run": self.paths.run_id,
            "interval_s": self.interval_s,
            **record,
        }

    def _look_for_master(self) -> None:
        master = find_master_run(
            self.paths,
            self.topology,
            self._created_at,
            self._rejected,
            now=self._wall_clock(),
        )
        if master is not None:
            self._move_to(master)

    def _move_to(self, master: RunPaths) -> None:
        """Go on in node 0's folder, taking along the lines written so far (none are deleted)."""
        old_lines, old_heartbeat = self.samples_path, self.heartbeat_path
        target = telemetry_folder(master.root)
        target.mkdir(parents=True, exist_ok=True)
        try:
            written = old_lines.read_bytes()
        except FileNotFoundError:
            written = b""
        if written:
            with (target / old_lines.name).open("ab") as lines:
                lines.write(written)
        self._root = master.root
        self._cluster_run = master.run_id
        self._searching = False
        # Readers of this node's own folder follow the pointer instead of seeing a dead node.
        last = read_heartbeat(old_heartbeat)
        if last is not None:
            write_heartbeat(old_heartbeat, {**last, "moved_to": master.run_id})
