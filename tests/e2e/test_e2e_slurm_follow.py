"""Submitting, following and stopping a SLURM job from the login side, on the real two-node
SLURM on 127.0.0.1 (tests/slurm_cluster.py): `vlm-tui slurm --submit`, `vlm-tui attach
JOB_OR_RUN --no-ui` and `vlm-tui stop`, and the monitor `vlm-tui attach JOB_OR_RUN` opens (a
Pilot test). Every job here costs each node its start-up (checks, the data, the model) on a
shared machine, so one job shows as much as it can.

Jobs are submitted held (`--hold`), so PENDING is seen for sure before they are released.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest
from textual.widgets import Static

from tests.helpers import run_cli, train_steps
from tests.slurm_cluster import JOB_BOUND_S, SlurmCluster
from vlm_tui.commands.common import find_job_or_run
from vlm_tui.core.launch.demo import demo_asset_paths, demo_cache_root
from vlm_tui.core.launch.steps import LaunchRequest, build_demo_in_child
from vlm_tui.core.records.folder import RunPaths
from vlm_tui.core.request.settings import settings_from_values
from vlm_tui.tui.app import VlmTuiApp
from vlm_tui.tui.monitor_screen import MonitorScreen
from vlm_tui.tui.setup_values import start_for
from vlm_tui.tui.widgets.cluster_table import ClusterTable
from vlm_tui.tui.widgets.log_view import LogView

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("slurm")]

# Far more steps than the tests let run: each stops the training well before its end.
MAX_STEPS = 400
# What `vlm-tui attach` exits with for a job that ended before its run started.
JOB_ENDED_UNSTARTED = 3


def _wait(what: str, ready: Callable[[], bool], cluster: SlurmCluster, extra: str = "") -> None:
    deadline = time.monotonic() + JOB_BOUND_S
    while not ready():
        assert time.monotonic() < deadline, f"no {what}\n{extra}\n{cluster.logs()}"
        time.sleep(0.5)


def _submit(cluster: SlurmCluster, env: dict[str, str], folder: Path, *extra: str) -> Path:
    args = ["slurm", "--nodes", "2", "--submit", "--demo", "--max_steps", str(MAX_STEPS)]
    done = run_cli([*args, "--rendezvous_timeout", "300", *extra], folder, env)
    assert done.returncode == 0, done.stdout + done.stderr
    (run,) = (folder / "runs").iterdir()
    return run


def _job_id(run: Path) -> str:
    return str(json.loads((run / "job.json").read_text())["job_id"])


def _steps(run: Path) -> int:
    try:
        lines = (run / "metrics.jsonl").read_text().splitlines()
    except OSError:
        return 0
    return sum(json.loads(line).get("kind") == "train" for line in lines if line.strip())


def _in_queue(cluster: SlurmCluster, job_id: str) -> bool:
    return bool(cluster.command("squeue", "--noheader", "--jobs", job_id).stdout.strip())


def _attach(folder: Path, env: dict[str, str], target: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "vlm_tui", "attach", target, "--no-ui"],
            cwd=folder,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )


def _stopped_with_weights(run: Path, workdir: Path, max_steps: int) -> int:
    """The steps trained, once both nodes recorded a graceful stop that saved a checkpoint of
    the last step and the final adapter before `max_steps`."""
    for folder in (run, run / "node1"):
        status = json.loads((folder / "status.json").read_text())
        assert status["state"] == "stopped", (folder, status)
    steps = _steps(run)
    assert steps < max_steps
    assert (workdir / "outputs" / "vlm-tui-demo" / "adapter_model.safetensors").is_file()
    assert any((workdir / "outputs" / "vlm-tui-demo").glob(f"checkpoint-{steps}"))
    return steps


@pytest.fixture
def slurm_env(slurm_cluster: SlurmCluster, demo_cache: Path) -> dict[str, str]:
    env = slurm_cluster.env({"VLM_TUI_CACHE_DIR": str(demo_cache), "HF_HUB_OFFLINE": "1"})
    build_demo_in_child(demo_asset_paths(demo_cache_root(env)), env)
    return env


def test_a_submitted_job_is_followed_trains_on_both_nodes_and_stops_gracefully(
    slurm_cluster: SlurmCluster, slurm_env: dict[str, str], tmp_path: Path
) -> None:
    """One job for the issue's first two items: `vlm-tui slurm --submit` trains one model on
    both nodes into one run folder, `attach` on the login side shows PENDING, RUNNING and both
    nodes, and `vlm-tui stop` stops every node gracefully, saving (the job still COMPLETES)."""
    started = time.monotonic()
    run = _submit(slurm_cluster, slurm_env, tmp_path, "--sbatch_line=--hold")
    job_id = _job_id(run)
    log = tmp_path / "attach.log"
    attach = _attach(tmp_path, slurm_env, run.name, log)
    try:
        _wait("PENDING line", lambda: "PENDING (JobHeldUser)" in log.read_text(), slurm_cluster)
        assert slurm_cluster.command("scontrol", "release", job_id).returncode == 0
        _wait("second step", lambda: _steps(run) >= 2, slurm_cluster, log.read_text())
        stop = run_cli(["stop", run.name], tmp_path, slurm_env)
        assert stop.returncode == 0, stop.stdout + stop.stderr
        assert f"SLURM job {job_id} of {run.name} asked to stop gracefully" in stop.stdout
        _wait("attach's end", lambda: attach.poll() is not None, slurm_cluster, log.read_text())
    finally:
        if attach.poll() is None:
            attach.kill()
    seen = log.read_text()
    print(f"attach + graceful stop: {time.monotonic() - started:.1f} s\n{seen[-3000:]}")
    pending = seen.index(f"SLURM job {job_id}: PENDING (JobHeldUser)")
    running = seen.index(f"SLURM job {job_id}: RUNNING on n[1-2]")
    assert pending < running
    # The nodes' table, as attach prints it whenever a node comes or changes: both nodes.
    table = seen[seen.index("nodes (2 expected):") :]
    assert "\n[vlm-tui] 0 " in table and "\n[vlm-tui] 1 " in table, table
    assert "[vlm-tui] stopped (exit " in seen

    # Every node's supervisor was asked once, by that node's own `vlm-tui stop`.
    job_output = (run / f"slurm-{job_id}.out").read_text(errors="replace")
    assert job_output.count("SLURM: stop asked") == 1
    assert job_output.count(f"stopping {run.name} gracefully") == 1
    assert job_output.count("stopping node1 gracefully") == 1
    steps = _stopped_with_weights(run, tmp_path, MAX_STEPS)
    assert steps >= 2
    assert train_steps(run) == list(range(1, steps + 1))  # each step recorded once
    _wait("job's end", lambda: not _in_queue(slurm_cluster, job_id), slurm_cluster)
    fields = slurm_cluster.job_fields(job_id)
    assert (fields["JobState"], fields["ExitCode"]) == ("COMPLETED", "0:0"), job_output[-4000:]
    assert fields["NodeList"] == "n[1-2]"

    # Both nodes trained one model together: world size 2, rank 0 and rank 1.
    job_output = (run / f"slurm-{job_id}.out").read_text(errors="replace")
    assert job_output.count("[INFO] World size: 2") == 2
    assert "[INFO] Global rank: 0" in job_output and "[INFO] Global rank: 1" in job_output
    # One run folder holds both nodes' records and telemetry.
    node1 = run / "node1"
    node1_status = json.loads((node1 / "status.json").read_text())
    assert node1_status["cluster_run"] == run.name
    assert "[INFO] Global rank: 1" in (node1 / "train.log").read_text(errors="replace")
    telemetry = sorted(path.name.split("-")[0] for path in (run / "telemetry").glob("*.jsonl"))
    assert telemetry == ["node0", "node1"]
    # Only node 0 wrote the output folder: one model, in one place.
    assert [path.name for path in (tmp_path / "outputs").iterdir()] == ["vlm-tui-demo"]
    assert node1_status["output_dir"] == str(node1 / "node-output")


def _run_processes(run: Path) -> list[psutil.Process]:
    """Processes on this machine (both nodes' here) that belong to the run: its id in their
    environment or its folder on their command line."""
    found = []
    workdir = str(run.parent.parent)
    for process in psutil.process_iter():
        try:
            # Run names can repeat between test folders: the id counts in this folder only.
            named = run.name == process.environ().get("VLM_TUI_RUN_ID")
            named = named and process.cwd().startswith(workdir)
            named = named or str(run) in " ".join(process.cmdline())
        except psutil.Error:
            continue
        if named:
            found.append(process)
    return found


def test_a_forced_stop_leaves_no_process_of_the_run_on_either_node(
    slurm_cluster: SlurmCluster, slurm_env: dict[str, str], tmp_path: Path
) -> None:
    started = time.monotonic()
    run = _submit(slurm_cluster, slurm_env, tmp_path)
    job_id = _job_id(run)
    _wait("first step", lambda: _steps(run) >= 1, slurm_cluster)
    pids = [
        json.loads((folder / "status.json").read_text())["supervisor_pid"]
        for folder in (run, run / "node1")
    ]
    assert len(_run_processes(run)) >= 4  # each node's vlm-tui, supervisor and training
    stop = run_cli(["stop", "--force", job_id], tmp_path, slurm_env)
    assert stop.returncode == 0, stop.stdout + stop.stderr
    assert f"SLURM job {job_id} of {run.name} cancelled" in stop.stdout
    _wait("job's end", lambda: not _in_queue(slurm_cluster, job_id), slurm_cluster)
    print(f"forced stop: {time.monotonic() - started:.1f} s")
    state = slurm_cluster.command("scontrol", "--oneliner", "show", "job", job_id).stdout
    assert "JobState=CANCELLED" in state
    left = [(p.pid, p.ppid(), " ".join(p.cmdline())[:160]) for p in _run_processes(run)]
    assert left == [], left
    assert not [pid for pid in pids if _running(pid)]


def _running(pid: int) -> bool:
    """Alive and not a zombie (an exited process whose new parent, init here, has not reaped it
    yet holds nothing)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_attach_to_a_job_cancelled_while_pending_says_so_and_exits_non_zero(
    slurm_cluster: SlurmCluster, slurm_env: dict[str, str], tmp_path: Path
) -> None:
    run = _submit(slurm_cluster, slurm_env, tmp_path, "--sbatch_line=--hold")
    job_id = _job_id(run)
    log = tmp_path / "attach.log"
    attach = _attach(tmp_path, slurm_env, job_id, log)
    try:
        _wait("PENDING line", lambda: "PENDING (JobHeldUser)" in log.read_text(), slurm_cluster)
        assert slurm_cluster.command("scancel", job_id).returncode == 0
        _wait("attach's end", lambda: attach.poll() is not None, slurm_cluster, log.read_text())
    finally:
        if attach.poll() is None:
            attach.kill()
    seen = log.read_text()
    assert attach.returncode == JOB_ENDED_UNSTARTED, seen
    assert f"SLURM job {job_id} ended (CANCELLED) before its run started" in seen
    assert not (run / "status.json").exists()


def _text(widget: Static) -> str:
    return str(widget.render())


def _on_login_node(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], workdir: Path) -> None:
    """The monitor's workers ask this process's SLURM commands, as on a login node."""
    monkeypatch.setenv("SLURM_CONF", env["SLURM_CONF"])
    monkeypatch.setenv("PATH", env["PATH"])
    monkeypatch.chdir(workdir)


def _monitor_app(env: dict[str, str], workdir: Path, attached: RunPaths) -> VlmTuiApp:
    """The app as `vlm-tui attach JOB_OR_RUN` opens it: on the monitor of `attached`."""
    request = LaunchRequest(settings=settings_from_values({}, require_data=False))
    start = start_for(request, env, workdir)
    return VlmTuiApp(start, env, workdir, theme="vlm-dark", attach_to=attached)


def test_the_monitor_follows_a_held_job_from_pending_to_both_nodes_and_stops_it_with_s(
    slurm_cluster: SlurmCluster,
    slurm_env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.tui.test_setup_screen import SIZE, wait_for

    started = time.monotonic()
    run = _submit(slurm_cluster, slurm_env, tmp_path, "--sbatch_line=--hold")
    job_id = _job_id(run)
    _on_login_node(monkeypatch, slurm_env, tmp_path)
    # `vlm-tui attach JOBID` opens the monitor on the folder the job id names.
    attached = find_job_or_run(job_id)
    assert attached.root == run.resolve()
    app = _monitor_app(slurm_env, tmp_path, attached)
    seen: dict[str, Any] = {}

    async def scenario() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(lambda: isinstance(app.screen, MonitorScreen), pilot)
            screen = app.screen
            assert isinstance(screen, MonitorScreen)
            state = screen.query_one("#run-state", Static)
            pending = f"SLURM job {job_id}: PENDING (JobHeldUser)"
            await wait_for(lambda: pending in _text(state), pilot, seconds=JOB_BOUND_S)
            seen["pending"] = _text(state)
            assert slurm_cluster.command("scontrol", "release", job_id).returncode == 0
            running = f"SLURM job {job_id}: RUNNING on n[1-2]"
            await wait_for(lambda: running in _text(state), pilot, seconds=JOB_BOUND_S)
            table = screen.query_one(ClusterTable)

            def both_nodes_training() -> bool:
                rows = table.view.rows if table.view is not None else []
                return [row.node_rank for row in rows] == [0, 1] and _steps(run) >= 1

            await wait_for(both_nodes_training, pilot, seconds=JOB_BOUND_S)
            seen["table"] = table.text
            await pilot.press("s")
            await wait_for(lambda: screen.view.ended, pilot, seconds=JOB_BOUND_S)
            # Then SLURM's word on how the job ended, once every node is done.
            await wait_for(lambda: "RUNNING" not in _text(state), pilot, seconds=JOB_BOUND_S)
            seen["ended"] = _text(state)
            log = screen.query_one(LogView)
            log.flush_now()
            seen["log"] = log.history()

    try:
        asyncio.run(scenario())
    finally:
        slurm_cluster.command("scancel", job_id)
    shown = {key: seen[key] for key in ("pending", "table", "ended")}
    print(f"monitor: held job to graceful stop {time.monotonic() - started:.1f} s\n{shown}")
    assert seen["pending"].splitlines()[1] == "waiting for the job's node 0 to start the run"
    assert [line.split()[0] for line in seen["table"].splitlines()[1:]] == ["0", "1"]
    stop_asked = f"SLURM job {job_id} asked to stop gracefully"
    assert any(stop_asked in line for line in seen["log"]), seen["log"]
    ended = seen["ended"].splitlines()
    assert ended[0].startswith(f"SLURM job {job_id}: COMPLETED"), ended
    assert ended[1] == "stopped (exit 0)", ended
    assert _stopped_with_weights(run, tmp_path, MAX_STEPS) >= 1


def test_the_monitor_says_a_job_cancelled_with_k_while_pending_never_started(
    slurm_cluster: SlurmCluster,
    slurm_env: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.tui.test_setup_screen import SIZE, wait_for

    run = _submit(slurm_cluster, slurm_env, tmp_path, "--sbatch_line=--hold")
    job_id = _job_id(run)
    _on_login_node(monkeypatch, slurm_env, tmp_path)
    app = _monitor_app(slurm_env, tmp_path, find_job_or_run(run.name))
    seen: dict[str, str] = {}

    async def scenario() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(lambda: isinstance(app.screen, MonitorScreen), pilot)
            state = app.screen.query_one("#run-state", Static)
            pending = f"SLURM job {job_id}: PENDING (JobHeldUser)"
            await wait_for(lambda: pending in _text(state), pilot, seconds=JOB_BOUND_S)
            await pilot.press("K")
            never = "before its run started"
            await wait_for(lambda: never in _text(state), pilot, seconds=JOB_BOUND_S)
            seen["state"] = _text(state)

    try:
        asyncio.run(scenario())
    finally:
        slurm_cluster.command("scancel", job_id)
    assert seen["state"] == (
        f"SLURM job {job_id} ended (CANCELLED) before its run started: nothing was trained"
    )
    assert "JobState=CANCELLED" in slurm_cluster.command("scontrol", "show", "job", job_id).stdout
    assert not (run / "status.json").exists()
