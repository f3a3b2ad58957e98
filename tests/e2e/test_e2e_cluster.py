"""Two nodes on 127.0.0.1 sharing one work folder (the shared storage the guide asks for).

One real two-node demo training serves every test here: both nodes' telemetry lands in node 0's
run folder, the master's TUI (a Pilot test, attached while the nodes train) shows both nodes
in its cluster table, and `vlm-tui status` prints the same table for either node's run.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import clean_environ, free_port, guide_node_env, run_cli
from vlm_tui.core.launch.steps import LaunchRequest
from vlm_tui.core.records.folder import RunPaths, read_json, telemetry_folder
from vlm_tui.core.request.settings import settings_from_values
from vlm_tui.core.runs.cluster import cluster_view

# One worker runs this module: its tests share one two-node training.
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e-cluster")]

RUN_TIMEOUT = 600
NODE_ARGS = ("--no-ui", "--demo", "--rendezvous_timeout", "300")


@dataclass
class SharedCluster:
    """Two `vlm-tui --no-ui --demo` nodes started in one work folder."""

    workdir: Path
    processes: list[subprocess.Popen[bytes]]
    outputs: list[Path]
    codes: list[int] = field(default_factory=list)

    def run_of(self, node_rank: int, timeout: float = 300) -> RunPaths:
        """The node's run folder, once it exists."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            runs = self.workdir / "runs"
            names = sorted(p.name for p in runs.iterdir()) if runs.is_dir() else []
            mine = [
                name
                for name in names
                if name.endswith("-node1") == (node_rank == 1)
                and (runs / name / "command.json").exists()
            ]
            if mine:
                return RunPaths(runs / mine[-1])
            assert all(process.poll() is None for process in self.processes), self.output()
            time.sleep(0.2)
        pytest.fail(f"no run folder of node {node_rank} after {timeout:.0f} s")

    def finish(self) -> list[int]:
        """Both nodes' exit codes, once they ended (at most once waited for)."""
        if not self.codes:
            self.codes = [process.wait(timeout=RUN_TIMEOUT) for process in self.processes]
        return self.codes

    def output(self) -> str:
        return "\n".join(path.read_text(errors="replace")[-3000:] for path in self.outputs)


@pytest.fixture(scope="module")
def shared_cluster(
    demo_cache: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SharedCluster]:
    workdir = tmp_path_factory.mktemp("shared-work")
    logs = tmp_path_factory.mktemp("shared-logs")
    port = free_port()
    processes = []
    outputs = []
    for rank in (0, 1):
        env = {**guide_node_env(demo_cache, rank, port), "LOCAL_RANK": "0"}
        output = logs / f"node{rank}.out"
        outputs.append(output)
        with output.open("wb") as sink:
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "vlm_tui", *NODE_ARGS],
                    cwd=workdir,
                    env=env,
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                )
            )
    cluster = SharedCluster(workdir, processes, outputs)
    try:
        yield cluster
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()


def test_the_masters_tui_shows_both_nodes_in_its_cluster_table(
    shared_cluster: SharedCluster,
) -> None:
    from tests.tui.test_setup_screen import SIZE, wait_for
    from vlm_tui.tui.app import VlmTuiApp
    from vlm_tui.tui.monitor_screen import MonitorScreen
    from vlm_tui.tui.setup_values import start_for
    from vlm_tui.tui.widgets.cluster_table import ClusterTable

    master = shared_cluster.run_of(0)
    workdir = shared_cluster.workdir
    environ = clean_environ()
    request = LaunchRequest(settings=settings_from_values({}, require_data=False))
    app = VlmTuiApp(
        start_for(request, environ, workdir), environ, workdir, theme="vlm-dark", attach_to=master
    )
    seen: dict[str, Any] = {}

    async def scenario() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(lambda: isinstance(app.screen, MonitorScreen), pilot)
            table = app.screen.query_one(ClusterTable)

            def both_nodes() -> bool:
                view = table.view
                if view is None:
                    return False
                hosts = {row.node_rank: row.host for row in view.rows}
                return sorted(hosts) == [0, 1] and None not in hosts.values()

            await wait_for(both_nodes, pilot, seconds=300)
            assert table.view is not None
            seen["rows"] = table.view.rows
            seen["note"] = table.view.note
            seen["text"] = table.text

    asyncio.run(scenario())
    rows = seen["rows"]
    assert [row.node_rank for row in rows] == [0, 1]
    assert seen["note"] == ""
    assert [row.flag for row in rows] == ["", ""], seen["text"]
    assert [line.split()[0] for line in seen["text"].splitlines()[1:]] == ["0", "1"]


def test_both_nodes_telemetry_is_in_node_0s_run_folder(shared_cluster: SharedCluster) -> None:
    assert shared_cluster.finish() == [0, 0], shared_cluster.output()
    master, worker = shared_cluster.run_of(0), shared_cluster.run_of(1)
    folder = telemetry_folder(master.root)
    names = sorted(path.name for path in folder.iterdir())
    assert [name.split("-")[0] for name in names] == ["node0", "node0", "node1", "node1"]
    for rank in (0, 1):
        (heartbeat,) = folder.glob(f"node{rank}-*.json")
        beat = read_json(heartbeat)
        assert beat is not None and beat["state"] == "finished" and beat["node_rank"] == rank
        samples = [json.loads(line) for line in heartbeat.with_suffix(".jsonl").open()]
        assert [sample["seq"] for sample in samples] == list(range(1, len(samples) + 1))
        # While training, the run's own processes (launcher, rank) were there to measure.
        assert any(s["state"] == "running" and s["run_processes"] >= 2 for s in samples)
    worker_beat = read_json(next(folder.glob("node1-*.json")))
    assert worker_beat is not None and worker_beat["run"] == worker.run_id
    worker_status = read_json(worker.status)
    assert worker_status is not None and worker_status["cluster_run"] == master.run_id
    for paths in (master, worker):
        status = read_json(paths.status) or {}
        assert status["supervisor_cpu_s"] > 0
    view = cluster_view(master)
    assert view.note == "" and [(row.node_rank, row.state) for row in view.rows] == [
        (0, "finished"),
        (1, "finished"),
    ]


def test_status_shows_the_same_table_from_either_nodes_run(
    shared_cluster: SharedCluster,
) -> None:
    assert shared_cluster.finish() == [0, 0], shared_cluster.output()
    tables = []
    for rank in (0, 1):
        run = shared_cluster.run_of(rank)
        done = run_cli(["status", run.run_id], shared_cluster.workdir)
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert lines[0].startswith(f"{run.run_id}: finished (exit 0)")
        assert lines[1] == (
            f"nodes: 2 expected; heartbeats from {shared_cluster.run_of(0).root.resolve()}"
        )
        assert [line.split()[0] for line in lines[3:]] == ["0", "1"]
        assert all(line.split()[-2:] == ["ended", "finished"] for line in lines[3:])
        tables.append(lines[2:])
    assert tables[0] == tables[1]
