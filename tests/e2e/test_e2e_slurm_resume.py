"""A job SLURM ends early and puts back, on the real two-node SLURM on 127.0.0.1
(tests/slurm_cluster.py).

One two-node job serves both tests, as on a cluster: it reaches its time limit, whose early
signal has node 0's training save a checkpoint before SLURM ends it (TIMEOUT); then it is
requeued (`scontrol requeue`, as after a preemption) and goes on in its run folder from that
checkpoint on both nodes, the step count continuing, until it is stopped gracefully.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import run_cli, train_steps
from tests.slurm_cluster import JOB_BOUND_S, SlurmCluster
from vlm_tui.core.launch.demo import demo_asset_paths, demo_cache_root
from vlm_tui.core.launch.steps import build_demo_in_child
from vlm_tui.core.runs.checkpoints import newest_checkpoint

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("slurm")]

POLL_S = 0.5
WARNING_S = 60
# Steps the second attempt trains past the checkpoint before it is stopped.
STEPS_AFTER_RESUME = 2


@dataclass(frozen=True)
class TimedOutJob:
    """The job's folders and its first attempt's end, as both tests read them."""

    workdir: Path
    env: dict[str, str]
    run: Path
    job_id: str
    output: Path
    # What the first attempt left, read before the second one changes the run folder.
    state: str
    job_output: str
    log: str
    steps: list[int]
    checkpoint_step: int | None  # its newest complete checkpoint's


def _wait(cluster: SlurmCluster, condition: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + JOB_BOUND_S
    while not condition():
        assert time.monotonic() < deadline, f"no {what}\n{cluster.logs()}"
        time.sleep(POLL_S)


def _queued(cluster: SlurmCluster, job_id: str) -> bool:
    return bool(cluster.command("squeue", "--noheader", "--jobs", job_id).stdout.strip())


def _steps(run: Path) -> list[int]:
    try:
        return train_steps(run)
    except (OSError, json.JSONDecodeError):  # not written yet, or a line being written
        return []


def _seconds(run_time: str) -> int:
    """scontrol's RunTime, [D-]H:M:S, in seconds."""
    days, _, clock = run_time.rpartition("-")
    hours, minutes, seconds = (int(part) for part in clock.split(":"))
    return ((int(days or 0) * 24 + hours) * 60 + minutes) * 60 + seconds


def _update(cluster: SlurmCluster, job_id: str, setting: str) -> None:
    done = cluster.command("scontrol", "update", f"JobId={job_id}", setting)
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def timed_out_job(
    slurm_cluster: SlurmCluster, demo_cache: Path, tmp_path_factory: pytest.TempPathFactory
) -> TimedOutJob:
    """A two-node demo job of far more steps than it gets time for, ended by its time limit."""
    workdir = tmp_path_factory.mktemp("slurm-time-limit")
    env = slurm_cluster.env({"VLM_TUI_CACHE_DIR": str(demo_cache), "HF_HUB_OFFLINE": "1"})
    build_demo_in_child(demo_asset_paths(demo_cache_root(env)), env)
    started = time.monotonic()
    argv = ["slurm", "--submit", "--demo", "--rendezvous_timeout", "300", "--nodes", "2"]
    argv += ["--requeue", "--time", "10", f"--sbatch_line=--signal=B:USR1@{WARNING_S}"]
    done = run_cli([*argv, "--max_steps", "1000000", "--save_strategy", "no"], workdir, env)
    assert done.returncode == 0, done.stdout + done.stderr
    (run,) = (workdir / "runs").iterdir()
    job_id = str(json.loads((run / "job.json").read_text())["job_id"])
    _wait(slurm_cluster, lambda: _steps(run), "first step")
    # Shortened once it trains, so that the warning comes mid-training, as in a job of hours,
    # however long the start took. SLURM looks at time limits every 30 s: the warning comes
    # 60 to 90 s before the new end, which leaves between 60 and 120 s from now; the job
    # ends up to 30 s after it.
    run_time = _seconds(slurm_cluster.job_fields(job_id)["RunTime"])
    _update(slurm_cluster, job_id, f"TimeLimit={run_time // 60 + 2}")
    _wait(slurm_cluster, lambda: not _queued(slurm_cluster, job_id), "end of the job")
    print(f"time-limited slurm job {job_id}: submit to end {time.monotonic() - started:.1f} s")
    output = workdir / "outputs" / "vlm-tui-demo"
    newest = newest_checkpoint(output)
    return TimedOutJob(
        workdir,
        env,
        run,
        job_id,
        output,
        slurm_cluster.job_fields(job_id)["JobState"],
        (run / f"slurm-{job_id}.out").read_text(errors="replace"),
        (run / "train.log").read_text(errors="replace"),
        train_steps(run),
        newest[0] if newest else None,
    )


def test_a_time_limit_warns_the_job_and_node_0_saves_a_checkpoint_first(
    timed_out_job: TimedOutJob,
) -> None:
    job, job_output = timed_out_job, timed_out_job.job_output
    assert job.state == "TIMEOUT", job_output[-4000:]
    assert "DUE TO TIME LIMIT" in job_output, job_output[-4000:]
    assert job_output.count("the time limit is near: asking node 0 for a checkpoint") == 1
    # No save_steps: the one complete checkpoint is the one the warning asked for.
    assert job.checkpoint_step is not None, job_output[-4000:]
    triggered = "Dynamic checkpoint triggered via file 'axolotl_checkpoint.save' at step"
    assert job.log.count(triggered) == 1
    assert f"{triggered} {job.checkpoint_step}\n" in job.log
    # It was saved while the training went on, before SLURM ended it.
    assert job.steps == list(range(1, job.steps[-1] + 1))
    assert job.steps[-1] > job.checkpoint_step


def test_a_requeued_job_goes_on_from_the_newest_checkpoint_on_both_nodes(
    slurm_cluster: SlurmCluster, timed_out_job: TimedOutJob
) -> None:
    job, run = timed_out_job, timed_out_job.run
    assert job.checkpoint_step is not None
    resumed_at = job.checkpoint_step
    started = time.monotonic()
    done = slurm_cluster.command("scontrol", "requeue", job.job_id)
    assert done.returncode == 0, done.stderr
    # The time limit shortened for the first attempt goes.
    _update(slurm_cluster, job.job_id, "TimeLimit=10")

    def running_again() -> bool:
        fields = slurm_cluster.job_fields(job.job_id)
        if fields.get("JobState") == "PENDING" and fields.get("Reason") == "BeginTime":
            # A requeued job waits a while before it may start again; here, no need.
            _update(slurm_cluster, job.job_id, "StartTime=now")
        return fields.get("Restarts") == "1" and fields.get("JobState") == "RUNNING"

    _wait(slurm_cluster, running_again, "second attempt running")

    def trained_on() -> bool:
        # The new attempt records its command once the earlier one's metrics are set aside.
        command = json.loads((run / "command.json").read_text())
        steps = _steps(run)
        resumed = command["start_step"] == resumed_at
        return resumed and bool(steps) and steps[-1] >= resumed_at + STEPS_AFTER_RESUME

    _wait(slurm_cluster, trained_on, "steps after the checkpoint")
    stop = run_cli(["stop", run.name], job.workdir, job.env)
    assert stop.returncode == 0, stop.stdout + stop.stderr
    _wait(slurm_cluster, lambda: not _queued(slurm_cluster, job.job_id), "end of the job")
    print(f"requeued slurm job {job.job_id}: requeue to end {time.monotonic() - started:.1f} s")
    fields = slurm_cluster.job_fields(job.job_id)
    job_output = (run / f"slurm-{job.job_id}.out").read_text(errors="replace")
    assert (fields["JobState"], fields["ExitCode"]) == ("COMPLETED", "0:0"), job_output[-4000:]
    assert "goes on from its newest checkpoint" in job_output, job_output[-4000:]

    # Both nodes went on from node 0's checkpoint on the shared folder, at the same step.
    checkpoint = str(job.output / f"checkpoint-{resumed_at}")
    for folder in (run, run / "node1"):
        assert json.loads((folder / "command.json").read_text())["start_step"] == resumed_at
        assert f"resume_from_checkpoint: {checkpoint}\n" in (folder / "config.yml").read_text()
        status = json.loads((folder / "status.json").read_text())
        assert status["state"] == "stopped", (folder, status)
    # The step count went on: every step in the run's metrics once, up to the graceful stop's.
    steps = train_steps(run)
    assert steps == list(range(1, steps[-1] + 1))
    assert steps[-1] >= resumed_at + STEPS_AFTER_RESUME
    assert (job.output / f"checkpoint-{steps[-1]}").is_dir()
    # The first attempt's own records stay beside them, past the checkpoint too.
    earlier = (run / "metrics-attempt1.jsonl").read_text().splitlines()
    assert [r["step"] for r in map(json.loads, earlier) if r["kind"] == "train"] == job.steps
    assert (run / "train-attempt1.log").read_text(errors="replace") == job.log
