"""Two real "nodes" on 127.0.0.1 (gloo, loopback addresses only), each in its own work folder
as two machines would be; a worker whose master never comes; a master whose port is taken;
a master whose workers never come.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import (
    DEMO_STEPS_ONE_PROCESS,
    free_port,
    guide_node_env,
    only_run,
    run_cli,
    train_steps,
)
from vlm_tui.core.records.folder import RunPaths
from vlm_tui.core.runs.cluster import NOT_SHARED_NOTE, cluster_view

# One worker runs this module: its tests share one two-node training.
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("two-nodes")]


@pytest.fixture(scope="module")
def two_nodes(
    demo_cache: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[list[Path], list[subprocess.CompletedProcess[str]]]]:
    port = free_port()
    folders = [tmp_path_factory.mktemp(f"node{rank}") for rank in (0, 1)]
    starts = []
    for rank, folder in enumerate(folders):
        env = {**guide_node_env(demo_cache, rank, port), "LOCAL_RANK": "0"}
        starts.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "vlm_tui",
                    "--no-ui",
                    "--demo",
                    "--rendezvous_timeout",
                    "300",
                ],
                cwd=folder,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    results = []
    for process in starts:
        stdout, stderr = process.communicate(timeout=600)
        results.append(
            subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
        )
    yield folders, results


def test_two_nodes_on_loopback_train_one_model_together(
    two_nodes: tuple[list[Path], list[subprocess.CompletedProcess[str]]],
) -> None:
    folders, results = two_nodes
    for rank, done in enumerate(results):
        assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
        assert f"[INFO] Global rank: {rank}" in done.stdout
        assert "[INFO] World size: 2" in done.stdout
        assert f" --num_machines 2 --machine_rank {rank} --num_processes 2 " in done.stdout
    node0_run, node1_run = only_run(folders[0]), only_run(folders[1])
    assert node1_run.name.endswith("-node1")
    # Only global rank 0 prints metrics; they cover one shared run of 16 steps.
    assert train_steps(node0_run) == list(range(1, DEMO_STEPS_ONE_PROCESS // 2 + 1))
    assert '"world_size": 2' in (node0_run / "train.log").read_text(errors="replace")


def test_only_node_0_writes_the_output_folder(
    two_nodes: tuple[list[Path], list[subprocess.CompletedProcess[str]]],
) -> None:
    folders, _ = two_nodes
    assert (folders[0] / "outputs" / "vlm-tui-demo" / "adapter_model.safetensors").is_file()
    assert list((folders[0] / "outputs" / "vlm-tui-demo").glob("checkpoint-*"))
    # Node 1 keeps whatever axolotl writes on every node inside its own run record.
    assert not (folders[1] / "outputs").exists()
    node1_status = json.loads((only_run(folders[1]) / "status.json").read_text())
    assert node1_status["output_dir"].endswith("node-output")


def test_without_shared_storage_each_nodes_table_says_so_and_shows_that_node(
    two_nodes: tuple[list[Path], list[subprocess.CompletedProcess[str]]],
) -> None:
    folders, _ = two_nodes
    for rank, folder in enumerate(folders):
        view = cluster_view(RunPaths(only_run(folder)))
        assert view.note == NOT_SHARED_NOTE
        assert [(row.node_rank, row.state) for row in view.rows] == [(rank, "finished")]
    done = run_cli(["status"], folders[0])
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == NOT_SHARED_NOTE


def test_a_worker_whose_master_never_comes_fails_within_a_bounded_time(
    demo_cache: Path, tmp_path: Path
) -> None:
    env = guide_node_env(demo_cache, 1, free_port())
    started = time.monotonic()
    done = run_cli(
        ["--no-ui", "--demo", "--skip-check", "--rendezvous_timeout", "5"], tmp_path, env
    )
    elapsed = time.monotonic() - started
    assert done.returncode == 2, done.stdout + done.stderr
    # A bound, not a speed target: 5 s of waiting plus start-up, far below torch's 20+ minutes.
    assert elapsed < 120
    error = done.stderr.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("vlm-tui: error: master reachable: ")
    assert "RANK 0" in error[0] and "MASTER_ADDR" in error[0]
    assert not (tmp_path / "runs").exists()


def test_a_taken_port_on_the_master_is_caught_before_launch(
    demo_cache: Path, tmp_path: Path
) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        env = guide_node_env(demo_cache, 0, port)
        done = run_cli(["--no-ui", "--demo", "--skip-check"], tmp_path, env)
    assert done.returncode == 2, done.stdout + done.stderr
    error = done.stderr.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("vlm-tui: error: master port: ")
    assert str(port) in error[0]
    assert not (tmp_path / "runs").exists() and not (tmp_path / "outputs").exists()


def test_a_master_whose_workers_never_come_fails_with_cause_and_fix(
    demo_cache: Path, tmp_path: Path
) -> None:
    env = guide_node_env(demo_cache, 0, free_port())
    done = run_cli(
        ["--no-ui", "--demo", "--skip-check", "--rendezvous_timeout", "5"], tmp_path, env
    )
    assert done.returncode == 1, done.stdout + done.stderr
    status = json.loads((only_run(tmp_path) / "status.json").read_text())
    assert status["state"] == "failed"
    assert status["hint"] == "clients_missing"
    assert "1 of 2" in status["cause"]
    assert f"[vlm-tui] cause: {status['cause']}" in done.stdout
    assert f"[vlm-tui] fix: {status['fix']}" in done.stdout
    assert "MASTER_ADDR" in status["fix"]
