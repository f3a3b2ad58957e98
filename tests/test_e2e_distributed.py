"""Real distributed runs on one CPU host: gloo, loopback addresses only.

Two processes on one "node", two "nodes" on 127.0.0.1 (each in its own work folder, as two
machines would be), a worker whose master never comes, and a master whose port is taken.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import clean_environ, run_cli
from vlm_tui.core.cluster import NOT_SHARED_NOTE, cluster_view
from vlm_tui.core.run_record import RunPaths

pytestmark = pytest.mark.e2e

DEMO_STEPS_ONE_PROCESS = 32  # the demo's 64 samples x 2 epochs / batch 4


def guide_node_env(demo_cache: Path, rank: int, port: int) -> dict[str, str]:
    """The guide's variables for one node of a two-node job on this host."""
    return clean_environ(
        {
            "VLM_TUI_CACHE_DIR": str(demo_cache),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "WORLD_SIZE": "2",
            "RANK": str(rank),
        }
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def only_run(workdir: Path) -> Path:
    runs = sorted((workdir / "runs").iterdir())
    assert len(runs) == 1, runs
    return runs[0]


def train_steps(run: Path) -> list[int]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [r["step"] for r in map(json.loads, lines) if r["kind"] == "train"]


@pytest.fixture(scope="module")
def two_processes(demo_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    workdir = tmp_path_factory.mktemp("two-processes")
    env = clean_environ(
        {"VLM_TUI_CACHE_DIR": str(demo_cache), "MASTER_ADDR": "localhost", "NPROC_PER_NODE": "2"}
    )
    done = run_cli(["--no-ui", "--demo"], workdir, env)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    (workdir / "stdout.txt").write_text(done.stdout)
    yield workdir


def test_two_processes_train_one_synchronised_model(two_processes: Path) -> None:
    out = (two_processes / "stdout.txt").read_text()
    assert "🌐 Detected distributed environment - using accelerate launch" in out
    assert " --multi_gpu --num_machines 1 --machine_rank 0 --num_processes 2 " in out
    assert "[INFO] World size: 2" in out
    assert "[INFO] Distributed training with 2 processes" in out
    run = only_run(two_processes)
    log = (run / "train.log").read_text(errors="replace")
    # axolotl's own config dump: the trainer saw a world of two, not two worlds of one.
    assert '"world_size": 2' in log
    # Each step takes a batch on each process: the global batch doubles, the steps halve.
    assert train_steps(run) == list(range(1, DEMO_STEPS_ONE_PROCESS // 2 + 1))
    assert log.count("Model successfully saved to") == 1
    assert (two_processes / "outputs" / "vlm-tui-demo" / "adapter_model.safetensors").is_file()
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "finished" and status["exit_code"] == 0


def test_runs_compare_shows_the_measured_speedup_beside_the_guides(
    demo_run: tuple[Path, str, int], two_processes: Path, tmp_path: Path
) -> None:
    """The 1-process demo run (tests/conftest.py) and the 2-process one, in one runs/ folder
    (run folders are self-contained), compared by `vlm-tui runs --compare`."""
    demo_workdir, output, code = demo_run
    assert code == 0, output[-3000:]
    one, two = sorted((demo_workdir / "runs").iterdir())[0], only_run(two_processes)
    for run in (one, two):
        shutil.copytree(run, tmp_path / "runs" / run.name)
    done = run_cli(["runs", "--compare"], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    samples = {
        run.name: json.loads((run / "status.json").read_text())["summary"][
            "train_samples_per_second"
        ]
        for run in (one, two)
    }
    measured = samples[two.name] / samples[one.name]
    rows: dict[str, str] = {}
    for line in done.stdout.splitlines():  # the table's row, not the loss curve's below it
        rows.setdefault(line.split(" ", 1)[0], line)
    # Same config (the output folder and the CPU placement plugin aside), 1 and 2 processes.
    config = rows[one.name].split()[1]
    assert re.search(
        rf"^{one.name} +{config} +1 .* 1\.0x \(baseline\) +1x \(baseline\)$", rows[one.name]
    )
    assert re.search(
        rf"^{two.name} +{config} +2 .* {measured:.1f}x +~1\.75x \(at 87\.5% efficiency\)$",
        rows[two.name],
    )
    print(done.stdout)  # the measured figures, for the record (pytest -s)


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
