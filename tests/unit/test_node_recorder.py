"""The node recorder: its files, its heartbeat, finding node 0's run folder, and the supervisor.

Real psutil and real files throughout; a stand-in NVML module only where a GPU is needed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.helpers import clean_environ
from tests.unit.test_telemetry import GIB, FakeNVML
from vlm_tui.core.host.telemetry import Telemetry
from vlm_tui.core.records.command_file import topology_of
from vlm_tui.core.records.folder import (
    RunPaths,
    iso,
    node_file_stem,
    read_json,
    safe_host,
    telemetry_folder,
    write_json_atomic,
)
from vlm_tui.core.runs.cluster import LOST, cluster_view
from vlm_tui.core.supervise.node_recorder import NodeRecorder, find_master_run

HOST = "gpu-07.cluster.invalid"
NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
JOB = {"nodes": 2, "master_addr": "10.0.0.1", "master_port": 29500}
NODE_1 = topology_of(JOB | {"node_rank": 1})


def make_run(
    runs: Path,
    name: str,
    *,
    node_rank: int,
    created: datetime = NOW,
    status: dict[str, Any] | None = None,
    **topology: Any,
) -> RunPaths:
    """A run folder as `record_run` leaves it: command.json with the topology, status.json."""
    stamp = created.strftime("%Y%m%dT%H%M%SZ")
    paths = RunPaths(runs / f"{stamp}-{name}")
    paths.root.mkdir(parents=True)
    write_json_atomic(
        paths.command, {"argv": ["true"], "topology": {**JOB, "node_rank": node_rank, **topology}}
    )
    write_json_atomic(
        paths.status, {"state": "created", "created_at": iso(created), **(status or {})}
    )
    return paths


def lines_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def recorder_for(paths: RunPaths, *, state: str = "running", **options: Any) -> NodeRecorder:
    topology = topology_of((read_json(paths.command) or {})["topology"])
    return NodeRecorder(
        paths,
        topology,
        state=lambda: state,
        telemetry=options.pop("telemetry", Telemetry(nvml=FakeNVML(), min_interval_s=0.0)),
        host=options.pop("host", HOST),
        **options,
    )


def test_host_names_are_made_safe_for_file_names() -> None:
    assert safe_host("gpu-07.cluster.invalid") == "gpu-07.cluster.invalid"
    assert safe_host("a/b c:d") == "a_b_c_d"
    assert safe_host("../..") == "host"
    assert safe_host("") == "host"
    assert len(safe_host("x" * 300)) == 64
    # Two nodes on one host never share a file.
    assert node_file_stem(0, HOST) != node_file_stem(1, HOST)


def test_each_beat_appends_a_line_and_rewrites_the_heartbeat(tmp_path: Path) -> None:
    paths = make_run(tmp_path / "runs", "job", node_rank=0, nodes=1)
    nvml = FakeNVML(names=("NVIDIA H100 80GB HBM3", "NVIDIA H100 80GB HBM3"))
    nvml.processes = {0: [(os.getpid(), 2 * GIB), (1, 5 * GIB)]}
    recorder = recorder_for(
        paths,
        telemetry=Telemetry(nvml=nvml, min_interval_s=0.0),
        pids=lambda: (os.getpid(),),
        host="gpu 07/a",
    )

    recorder.beat()
    recorder.beat()

    folder = telemetry_folder(paths.root)
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["node0-gpu_07_a.json", "node0-gpu_07_a.jsonl"]
    samples = lines_of(folder / "node0-gpu_07_a.jsonl")
    assert [s["seq"] for s in samples] == [1, 2]
    assert all(s["state"] == "running" for s in samples)
    gpu = samples[-1]["gpus"][0]
    assert gpu["utilization_pct"] == 87.0
    assert gpu["memory_total_mib"] == 80 * 1024
    assert gpu["run_memory_mib"] == 2 * 1024  # this process's, not pid 1's
    assert samples[-1]["gpus"][1]["run_memory_mib"] == 0.0
    assert samples[-1]["run_processes"] == 1
    assert samples[-1]["run_rss_mib"] > 0
    assert samples[-1]["ram_total_mib"] > 0
    heartbeat = read_json(folder / "node0-gpu_07_a.json")
    assert heartbeat is not None
    assert heartbeat["seq"] == 2 and heartbeat["time"] == samples[-1]["time"]
    assert heartbeat["node_rank"] == 0 and heartbeat["host"] == "gpu 07/a"
    assert heartbeat["pid"] == os.getpid() and heartbeat["run"] == paths.run_id
    assert heartbeat["interval_s"] == 1.0

    recorder.stop("finished")
    final = read_json(folder / "node0-gpu_07_a.json")
    assert final is not None and final["state"] == "finished" and final["seq"] == 3
    assert lines_of(folder / "node0-gpu_07_a.jsonl")[-1]["state"] == "finished"
    # Stopped: a late beat writes nothing over the end state.
    recorder.beat()
    assert read_json(folder / "node0-gpu_07_a.json") == final


def wait_until(condition: Callable[[], bool], what: str, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_the_thread_beats_until_stopped(tmp_path: Path) -> None:
    paths = make_run(tmp_path / "runs", "job", node_rank=0, nodes=1)
    recorder = recorder_for(paths, interval_s=0.05)
    recorder.start()
    heartbeat = recorder.heartbeat_path
    wait_until(lambda: (read_json(heartbeat) or {}).get("seq", 0) >= 3, "three beats")
    recorder.stop("stopped")
    final = read_json(heartbeat)
    assert final is not None and final["state"] == "stopped"
    time.sleep(0.2)
    assert read_json(heartbeat) == final  # the thread is gone


def test_a_failing_beat_is_noted_once_and_the_recorder_goes_on(tmp_path: Path) -> None:
    paths = make_run(tmp_path / "runs", "job", node_rank=0, nodes=1)
    # A file where the telemetry folder should be: every write fails.
    telemetry_folder(paths.root).write_text("in the way")
    notes: list[str] = []
    recorder = recorder_for(paths, interval_s=0.02, note=notes.append)
    recorder.start()
    wait_until(lambda: bool(notes), "a note")
    time.sleep(0.2)  # several more failing beats
    recorder.stop("finished")
    assert len(notes) == 1, notes
    assert "FileExistsError" in notes[0] or "NotADirectoryError" in notes[0]


class HangingNVML(FakeNVML):
    """A driver whose utilisation reading hangs until released (a GPU falling off the bus)."""

    def __init__(self) -> None:
        super().__init__()
        self.hang = threading.Event()
        self.release = threading.Event()
        self.stuck = threading.Event()

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> Any:
        if self.hang.is_set():
            self.stuck.set()
            self.release.wait(30)
        return super().nvmlDeviceGetUtilizationRates(handle)


def test_a_hanging_reading_never_holds_up_the_end_of_the_run(tmp_path: Path) -> None:
    paths = make_run(tmp_path / "runs", "job", node_rank=0, nodes=1)
    nvml = HangingNVML()
    notes: list[str] = []
    recorder = recorder_for(
        paths,
        telemetry=Telemetry(nvml=nvml, min_interval_s=0.0),
        interval_s=0.02,
        note=notes.append,
    )
    recorder.start()
    wait_until(lambda: recorder.heartbeat_path.exists(), "a first beat")
    nvml.hang.set()
    assert nvml.stuck.wait(20), "the recorder never read the hanging driver"
    stopped_at = time.monotonic()
    recorder.stop("finished", timeout_s=0.3)
    assert time.monotonic() - stopped_at < 5
    assert notes == ["no last heartbeat: a reading of this node hangs"]
    stuck = read_json(recorder.heartbeat_path)
    assert stuck is not None and stuck["state"] == "running"
    # When the driver comes back, the stopped recorder writes nothing more.
    nvml.release.set()
    time.sleep(0.2)
    assert read_json(recorder.heartbeat_path) == stuck
    # Readers call it lost until the run's status.json records the end, then show that end.
    later = time.time() + 60
    (row,) = cluster_view(paths, now=later).rows
    assert (row.state, row.flag) == ("running", LOST)
    write_json_atomic(paths.status, {"state": "finished", "exit_code": 0})
    (row,) = cluster_view(paths, now=later).rows
    assert (row.state, row.flag) == ("finished", "")


# ---- finding node 0's run folder ----------------------------------------------------------


def test_node_0_is_found_among_decoys(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    own = make_run(runs, "job-node1", node_rank=1, created=NOW + timedelta(seconds=40))
    wanted = make_run(runs, "job", node_rank=0, created=NOW)
    # Same job, but an older run of it that ended before this node started.
    make_run(
        runs,
        "job",
        node_rank=0,
        created=NOW - timedelta(hours=2),
        status={"state": "finished", "ended_at": iso(NOW - timedelta(hours=1))},
    )
    # Another job on another port, and a node 1 of this very job on another host.
    make_run(runs, "job-b", node_rank=0, created=NOW + timedelta(seconds=5), master_port=29501)
    make_run(runs, "job-node1-2", node_rank=1, created=NOW + timedelta(seconds=41))
    # Same port and address, but three nodes: another job.
    make_run(runs, "job-x", node_rank=0, created=NOW + timedelta(seconds=1), nodes=3)
    # Far outside the window.
    make_run(runs, "job", node_rank=0, created=NOW - timedelta(days=3))
    # Not run folders at all.
    (runs / "notes.txt").write_text("mine")
    (runs / "20260301T120001Z-half-written").mkdir()
    rejected: set[str] = set()

    found = find_master_run(own, NODE_1, NOW + timedelta(seconds=40), rejected)

    assert found == wanted
    # Folders that can never match are not read again on the next look.
    assert "20260301T120005Z-job-b" in rejected
    assert "20260301T120001Z-half-written" not in rejected  # its command.json may still come


def test_same_name_wins_then_the_newest(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    own = make_run(runs, "job-node1", node_rank=1, created=NOW)
    make_run(runs, "other-name", node_rank=0, created=NOW + timedelta(seconds=20))
    older = make_run(runs, "job", node_rank=0, created=NOW - timedelta(seconds=30))
    assert find_master_run(own, NODE_1, NOW) == older
    newer = make_run(runs, "job-2", node_rank=0, created=NOW - timedelta(seconds=10))
    assert find_master_run(own, NODE_1, NOW) == newer


def test_a_dead_earlier_node_0_is_passed_over(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    own = make_run(runs, "job-node1", node_rank=1, created=NOW)
    dead = make_run(runs, "job", node_rank=0, created=NOW - timedelta(minutes=30))
    telemetry_folder(dead.root).mkdir()
    write_json_atomic(
        telemetry_folder(dead.root) / f"{node_file_stem(0, HOST)}.json",
        {"node_rank": 0, "state": "running", "seq": 9, "time": NOW.timestamp() - 1500},
    )
    now = NOW.timestamp() + 5
    assert find_master_run(own, NODE_1, NOW, now=now) is None
    live = make_run(runs, "job", node_rank=0, created=NOW - timedelta(seconds=3))
    assert find_master_run(own, NODE_1, NOW, now=now) == live


def test_node_1_writes_locally_until_node_0_appears_then_moves_there(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    own = make_run(runs, "job-node1", node_rank=1, created=NOW)
    recorder = recorder_for(own)
    recorder.beat()
    recorder.beat()
    local_lines = telemetry_folder(own.root) / f"{node_file_stem(1, HOST)}.jsonl"
    assert [s["seq"] for s in lines_of(local_lines)] == [1, 2]
    assert recorder.cluster_run is None

    master = make_run(runs, "job", node_rank=0, created=NOW + timedelta(seconds=2))
    recorder.beat()
    recorder.stop("finished")

    assert recorder.cluster_run == master.run_id
    moved = telemetry_folder(master.root) / f"{node_file_stem(1, HOST)}.jsonl"
    # What was written before is carried over; the local copy stays as it was.
    assert [s["seq"] for s in lines_of(moved)] == [1, 2, 3, 4]
    assert [s["seq"] for s in lines_of(local_lines)] == [1, 2]
    heartbeat = read_json(moved.with_suffix(".json"))
    assert heartbeat is not None and heartbeat["state"] == "finished"
    assert heartbeat["run"] == own.run_id  # the node's own run folder, for the reader
    local_heartbeat = read_json(local_lines.with_suffix(".json"))
    assert local_heartbeat is not None and local_heartbeat["moved_to"] == master.run_id


# ---- in the supervisor --------------------------------------------------------------------


def supervise(paths: RunPaths, code: str) -> dict[str, Any]:
    """Run the real supervisor on `python -c code` and return the status it recorded."""
    command = read_json(paths.command) or {}
    command.update(argv=[sys.executable, "-c", code], cwd=str(paths.root))
    write_json_atomic(paths.command, command)
    done = subprocess.run(
        [sys.executable, "-m", "vlm_tui.core.supervise.supervisor", str(paths.root)],
        env=clean_environ(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    status = read_json(paths.status)
    assert status is not None
    return status


def test_the_supervisor_records_heartbeats_and_its_own_cpu_time(tmp_path: Path) -> None:
    paths = make_run(tmp_path / "runs", "job", node_rank=0, nodes=1)
    status = supervise(paths, "import time; time.sleep(2.5)")

    assert status["state"] == "finished"
    assert isinstance(status["supervisor_cpu_s"], float) and status["supervisor_cpu_s"] > 0
    assert "cluster_run" not in status
    (heartbeat,) = telemetry_folder(paths.root).glob("node0-*.json")
    beat = read_json(heartbeat)
    assert beat is not None and beat["state"] == "finished" and beat["node_rank"] == 0
    samples = lines_of(heartbeat.with_suffix(".jsonl"))
    assert len(samples) >= 2
    # The training (python -c) shows up as the run's process while it runs.
    assert any(s["state"] == "running" and s["run_processes"] >= 1 for s in samples)


def test_a_supervisor_of_node_1_writes_into_node_0s_folder(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    master = make_run(runs, "job", node_rank=0, created=NOW)
    own = make_run(runs, "job-node1", node_rank=1, created=NOW + timedelta(seconds=1))
    status = supervise(own, "import time; time.sleep(1.5)")

    assert status["cluster_run"] == master.run_id
    names = sorted(p.name for p in telemetry_folder(master.root).iterdir())
    assert [name for name in names if name.startswith("node1-")] != []
    beat = read_json(next(telemetry_folder(master.root).glob("node1-*.json")))
    assert beat is not None and beat["state"] == "finished" and beat["run"] == own.run_id
