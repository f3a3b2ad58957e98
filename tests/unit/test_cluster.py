"""The cluster table from heartbeat files written by hand: rows, flags, the note, the text,
and `vlm-tui status` (the real command) on such a run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.helpers import run_cli
from vlm_tui.core.records.folder import (
    RunPaths,
    node_file_stem,
    telemetry_folder,
    write_json_atomic,
)
from vlm_tui.core.runs.cluster import (
    IDLE_GPUS,
    LOST,
    NO_RECORD,
    NOT_SHARED_NOTE,
    HeartbeatTracker,
    cluster_view,
    table_lines,
)

NOW = 1_800_000_000.0


def make_run(runs: Path, name: str, *, nodes: int, node_rank: int = 0, **status: Any) -> RunPaths:
    paths = RunPaths(runs / name)
    paths.root.mkdir(parents=True)
    topology = {"nodes": nodes, "node_rank": node_rank, "master_addr": "10.0.0.1"}
    write_json_atomic(paths.command, {"argv": ["true"], "topology": topology})
    write_json_atomic(paths.status, {"state": "running", **status})
    return paths


def gpu(util: float, used_gib: float = 60.0) -> dict[str, Any]:
    return {
        "index": 0,
        "name": "NVIDIA H100 80GB HBM3",
        "utilization_pct": util,
        "memory_used_mib": used_gib * 1024,
        "memory_total_mib": 80.0 * 1024,
    }


def beat(
    paths: RunPaths,
    node_rank: int,
    host: str,
    *,
    age_s: float = 0.5,
    state: str = "running",
    seq: int = 100,
    utils: tuple[float, ...] = (),
    now: float = NOW,
    **fields: Any,
) -> None:
    """One node's heartbeat file as the recorder writes it, `age_s` old at `now`."""
    folder = telemetry_folder(paths.root)
    folder.mkdir(exist_ok=True)
    write_json_atomic(
        folder / f"{node_file_stem(node_rank, host)}.json",
        {
            "node_rank": node_rank,
            "host": host,
            "pid": 4242,
            "run": paths.run_id,
            "interval_s": 1.0,
            "time": now - age_s,
            "seq": seq,
            "state": state,
            "gpus": [gpu(util) for util in utils],
            "cpu_pct": 12.0,
            "net_rx_bytes_per_s": 1.5e9,
            "net_tx_bytes_per_s": 2048.0,
            **fields,
        },
    )


def flags(paths: RunPaths, **options: Any) -> dict[tuple[int, str | None], str]:
    view = cluster_view(paths, now=NOW, **options)
    return {(row.node_rank, row.host): row.flag for row in view.rows}


def test_a_single_node_run_has_one_row(tmp_path: Path) -> None:
    paths = make_run(tmp_path / "runs", "solo", nodes=1)
    beat(paths, 0, "a.invalid", utils=(97.0, 95.0))
    view = cluster_view(paths, now=NOW)

    (row,) = view.rows
    assert (row.node_rank, row.host, row.gpus, row.flag) == (0, "a.invalid", 2, "")
    assert row.gpu_util_pct == 96.0
    assert row.gpu_memory_used_mib == 120 * 1024 and row.gpu_memory_total_mib == 160 * 1024
    assert row.heartbeat_age_s == 0.5
    assert view.note == ""


def test_a_silent_node_is_lost_after_three_heartbeats_unless_it_ended(tmp_path: Path) -> None:
    paths = make_run(tmp_path / "runs", "job", nodes=4)
    beat(paths, 0, "a.invalid", age_s=0.4)
    beat(paths, 1, "b.invalid", age_s=2.9)  # within three 1-second beats: fine
    beat(paths, 2, "c.invalid", age_s=3.2)  # three beats missed
    beat(paths, 3, "d.invalid", age_s=600.0, state="finished")  # ended: silence is expected

    assert flags(paths) == {
        (0, "a.invalid"): "",
        (1, "b.invalid"): "",
        (2, "c.invalid"): LOST,
        (3, "d.invalid"): "",
    }


def test_idle_gpus_are_flagged_while_the_others_work(tmp_path: Path) -> None:
    paths = make_run(tmp_path / "runs", "job", nodes=3)
    beat(paths, 0, "a.invalid", utils=(98.0, 96.0))
    beat(paths, 1, "b.invalid", utils=(1.0, 0.0))
    beat(paths, 2, "c.invalid", utils=(91.0, 99.0))
    assert flags(paths)[(1, "b.invalid")] == IDLE_GPUS
    assert flags(paths)[(0, "a.invalid")] == ""

    # All idle together (loading, saving) is not one node's problem.
    for rank, host in ((0, "a.invalid"), (2, "c.invalid")):
        beat(paths, rank, host, utils=(2.0,))
    assert set(flags(paths).values()) == {""}


def test_an_expected_node_without_a_heartbeat_has_no_record(tmp_path: Path) -> None:
    paths = make_run(tmp_path / "runs", "job", nodes=3)
    beat(paths, 0, "a.invalid", seq=2)
    beat(paths, 2, "c.invalid", seq=2)
    view = cluster_view(paths, now=NOW)
    assert [(row.node_rank, row.flag) for row in view.rows] == [(0, ""), (1, NO_RECORD), (2, "")]
    assert view.note == ""


def test_a_node_alone_in_its_folder_says_storage_is_not_shared(tmp_path: Path) -> None:
    paths = make_run(tmp_path / "runs", "job", nodes=2)
    beat(paths, 0, "a.invalid", seq=2)
    # At the start the other node may simply not have found this folder yet.
    early = cluster_view(paths, now=NOW)
    assert early.note == "" and [row.flag for row in early.rows] == ["", NO_RECORD]

    beat(paths, 0, "a.invalid", seq=30)
    view = cluster_view(paths, now=NOW)
    assert view.note == NOT_SHARED_NOTE
    assert [row.node_rank for row in view.rows] == [0]  # this node only
    assert table_lines(view)[-1] == NOT_SHARED_NOTE


def test_a_node_1_run_shows_the_table_of_node_0s_folder(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    master = make_run(runs, "job", nodes=2)
    own = make_run(runs, "job-node1", nodes=2, node_rank=1, cluster_run=master.run_id)
    beat(master, 0, "a.invalid")
    beat(master, 1, "b.invalid")
    # What node 1 wrote before it found node 0's folder points there and is not a third node.
    beat(own, 1, "b.invalid", age_s=900.0, moved_to=master.run_id)

    view = cluster_view(own, now=NOW)
    assert view.folder == master.root
    assert [(row.node_rank, row.flag, row.local) for row in view.rows] == [
        (0, "", False),
        (1, "", True),
    ]


def test_the_tracker_judges_staleness_by_its_own_clock_not_the_writers() -> None:
    clock = [50.0]
    tracker = HeartbeatTracker(clock=lambda: clock[0])
    key = (1, "b.invalid")
    # A node whose clock runs an hour behind: its first wall age reads an hour...
    assert tracker.age(key, 7, 3600.0) == 3600.0
    # ...but once its seq moves, the beat lies between the previous look and now.
    clock[0] += 0.3
    assert tracker.age(key, 8, 3600.3) == pytest.approx(0.3)
    clock[0] += 2.0
    assert tracker.age(key, 8, 0.0) == pytest.approx(2.3)  # a clock ahead cannot make it fresh
    # A node whose clock agrees with ours: the beat is placed where its time says.
    clock[0] += 1.0
    assert tracker.age(key, 9, 0.4) == pytest.approx(0.4)
    clock[0] += 1.5
    assert tracker.age(key, 9, 99.0) == pytest.approx(1.9)


def test_with_a_tracker_a_skewed_but_beating_node_is_not_lost(tmp_path: Path) -> None:
    paths = make_run(tmp_path / "runs", "job", nodes=2)
    clock = [0.0]
    tracker = HeartbeatTracker(clock=lambda: clock[0])
    beat(paths, 0, "a.invalid", seq=10)
    for seq in range(10, 20):
        beat(paths, 1, "b.invalid", seq=seq, age_s=7200.0)  # two hours behind, but beating
        clock[0] += 1.0
        row = cluster_view(paths, now=NOW, tracker=tracker).rows[1]
    assert row.flag == ""
    clock[0] += 3.5  # silence, by this reader's clock
    assert cluster_view(paths, now=NOW, tracker=tracker).rows[1].flag == LOST


def test_table_lines(tmp_path: Path) -> None:
    paths = make_run(tmp_path / "runs", "job", nodes=3)
    beat(paths, 0, "a.invalid", utils=(97.0,))
    beat(paths, 1, "a-very-long-host-name-for-a-table.cluster.invalid", age_s=12.0)
    view = cluster_view(paths, now=NOW)

    assert table_lines(view) == [
        "NODE  HOST                      GPUS  GPU UTIL  GPU MEM        CPU  NET RX/TX"
        "        HEARTBEAT  STATE    FLAG",
        "0     a.invalid                 1     97%       60.0/80.0 GiB  12%  1.5GB/s 2.0kB/s"
        "  0.5s ago   running",
        "1     a-very-long-host-name-f…  0     -         -              12%  1.5GB/s 2.0kB/s"
        "  12s ago    running  lost",
        "2     -                         -     -         -              -    -"
        "                never      -        no record",
    ]


def test_a_run_without_telemetry_reads_no_record(tmp_path: Path) -> None:
    paths = make_run(tmp_path / "runs", "old", nodes=1, state="finished")
    view = cluster_view(paths, now=NOW)
    assert [(row.node_rank, row.flag) for row in view.rows] == [(0, NO_RECORD)]


def test_status_prints_the_state_line_and_the_cluster_table(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    master = make_run(
        runs,
        "20260301T120000Z-job",
        nodes=2,
        state="finished",
        exit_code=0,
        steps=32,
        final_loss=0.347,
        started_at="2026-03-01T12:00:00.000Z",
        ended_at="2026-03-01T12:00:14.000Z",
    )
    beat(master, 0, "a.invalid", state="finished", utils=(0.0,))
    beat(master, 1, "b.invalid", state="finished", utils=(0.0,))

    done = run_cli(["status", "job"], tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[1].startswith("nodes: 2 expected; heartbeats from ")
    assert lines[1].endswith(master.run_id)
    assert (
        lines[0]
        == "20260301T120000Z-job: finished (exit 0)  step 32/?  loss 0.347  runtime 0:00:14"
    )
    assert lines[2].split() == [
        "NODE", "HOST", "GPUS", "GPU", "UTIL", "GPU", "MEM", "CPU", "NET", "RX/TX",
        "HEARTBEAT", "STATE", "FLAG",
    ]  # fmt: skip
    assert lines[3].split()[:3] == ["0", "a.invalid", "1"]
    assert lines[4].split()[:3] == ["1", "b.invalid", "1"]
    assert lines[3].split()[-2:] == ["ended", "finished"]
    assert len(lines) == 5

    bad = run_cli(["status", "no-such-run"], tmp_path)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        f"vlm-tui: error: RUN: no run matches 'no-such-run' under {runs}; `vlm-tui runs` lists them"
    ]
