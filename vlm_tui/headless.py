"""`vlm-tui --no-ui`: the same job without a screen, for batch jobs, CI and SLURM scripts.

It prints the guide's detection lines and the exact command, streams the training's output
(tqdm redraws collapsed, so log files stay readable), a compact progress line at most once a
second, a summary, and exits with the training's own exit code.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from vlm_tui.core.checks import doctor
from vlm_tui.core.host.detection import command_line, detect, topology_lines
from vlm_tui.core.host.hardware import probe_hardware
from vlm_tui.core.host.topology import resolve_topology
from vlm_tui.core.launch import pre_launch, steps
from vlm_tui.core.records.folder import RunPaths, runtime_s
from vlm_tui.core.records.status_file import read_status
from vlm_tui.core.records.trackers_file import tracker_lines
from vlm_tui.core.request.axolotl_config import OUTPUTS_FOLDER, output_dir_for
from vlm_tui.core.request.settings import Settings
from vlm_tui.core.runs.control import RecordedSupervisor, SupervisorHandle
from vlm_tui.core.text import run_lines
from vlm_tui.core.text.numbers import clock
from vlm_tui.core.text.run_lines import ProgressFigures, outcome_lines

if TYPE_CHECKING:  # the parser and the run state: only a run being followed needs them
    from vlm_tui.core.output.run_state import RunState

POLL_SECONDS = 0.1
INTERRUPTED = 130  # what a shell reports for a command ended by Ctrl+C
# `attach` of a SLURM job that ended (cancelled, failed) before its run ever started.
JOB_ENDED_UNSTARTED = 3
JOB_POLL_SECONDS = 0.5
PROGRESS_EVERY_SECONDS = 1.0
PREFIX = "[vlm-tui]"


def progress_line(state: RunState) -> str | None:
    progress = state.progress
    if progress is None:
        return None
    figures = ProgressFigures(
        step=progress.step,
        total=progress.total,
        remaining_s=progress.remaining_s,
        steps_per_second=progress.steps_per_second,
        loss=state.last_loss,
        eval_loss=state.eval_losses[-1][1] if state.eval_losses else None,
        learning_rate=state.learning_rate,
    )
    return f"{PREFIX} {run_lines.progress_line(figures)}"


def summary_lines(paths: RunPaths, state: RunState, status: Mapping[str, object]) -> list[str]:
    outcome = str(status.get("state", "unknown"))
    code = status.get("exit_code")
    steps = f"{state.step} steps"
    losses = (
        f", loss {state.first_loss:.4g} -> {state.last_loss:.4g}"
        if state.first_loss is not None and state.last_loss is not None
        else ""
    )
    lines = [
        f"{PREFIX} {outcome} (exit {code}) in {clock(runtime_s(dict(status)))}: {steps}{losses}"
    ]
    if state.best_eval is not None:
        step, loss = state.best_eval
        lines.append(f"{PREFIX} eval loss: best {loss:.4g} at step {step}")
    # The output's own word on the saved model first; status.json's where it has none (a stop).
    shown = outcome_lines(status, ended=True, saved_to=state.model_saved_to)
    lines += [f"{PREFIX} {line}" for line in shown]
    if not any(line.startswith("model saved to") for line in shown) and state.checkpoints:
        lines.append(f"{PREFIX} last checkpoint: {state.checkpoints[-1]}")
    lines.append(f"{PREFIX} run record: {paths.root}")
    lines += [f"{PREFIX} {line}" for line in tracker_lines(paths)]
    return lines


def exit_code_of(status: Mapping[str, object]) -> int:
    """The training's code; a death by signal N reads as 128+N, as shells report it. A run
    recorded failed although the training exited 0 (nothing was trained) exits 1."""
    code = status.get("exit_code")
    if not isinstance(code, int):
        return 1
    if code == 0 and status.get("state") == "failed":
        return 1
    return 128 - code if code < 0 else code


class Stopper:
    """Ctrl+C asks the run to stop gracefully; a second Ctrl+C forces it."""

    def __init__(self, supervisor: SupervisorHandle, out: TextIO) -> None:
        self.supervisor = supervisor
        self.out = out
        self.requests = 0

    def request(self) -> None:
        self.requests += 1
        graceful = self.requests == 1
        if self.supervisor.poll() is None:
            self.supervisor.send_signal(signal.SIGINT if graceful else signal.SIGTERM)
        how = "gracefully (Ctrl+C again to force)" if graceful else "by force"
        print(f"{PREFIX} stopping {how}", file=self.out, flush=True)


def detach_lines(paths: RunPaths) -> list[str]:
    return [
        f"{PREFIX} detached: the run goes on in the background",
        f"{PREFIX} follow it again with: vlm-tui attach {paths.run_id}",
        f"{PREFIX} stop it with: vlm-tui stop {paths.run_id}",
    ]


def follow(
    paths: RunPaths,
    supervisor: SupervisorHandle,
    out: TextIO,
    *,
    detach_on_interrupt: bool = False,
    tick: Callable[[], None] | None = None,
) -> tuple[RunState, dict[str, object], bool]:
    """Print the run's output until it ends; Ctrl+C stops it, or detaches (True is returned).
    `tick` runs once a round (it prints what else is followed: a job's queue state)."""
    # The parser: imported here, so a dry run never pays for its patterns.
    from vlm_tui.core.output.output_parser import LogLine
    from vlm_tui.core.runs.follow import RunFollower

    follower = RunFollower(paths)
    stopper = Stopper(supervisor, out)
    forced = False
    if not detach_on_interrupt:
        _follow_through_sigterm()
    next_progress = time.monotonic() + PROGRESS_EVERY_SECONDS
    last_line: str | None = None
    last_notice: str | None = None
    while not follower.ended:
        try:
            events = follower.poll()
            for event in events:
                if isinstance(event, LogLine):
                    out.write(event.text + "\n")
            now = time.monotonic()
            if now >= next_progress and not follower.ended:
                line = progress_line(follower.state)
                # A stalled run (loading, saving) does not repeat the same line every second.
                if line and line != last_line:
                    out.write(line + "\n")
                    last_line = line
                next_progress = now + PROGRESS_EVERY_SECONDS
            # A graceful stop that is slow or not taken is said, once each time it changes.
            notice = follower.status.get("stop_notice")
            if isinstance(notice, str) and notice != last_notice:
                out.write(f"{PREFIX} stop: {notice}\n")
                last_notice = notice
            if tick is not None:
                tick()
            out.flush()
            if not events and not follower.ended:
                if supervisor.poll() is not None:
                    # The supervisor died without recording an end: report what we know.
                    follower.poll()
                    if not follower.ended:
                        follower.status.setdefault("reason", "the run's supervisor died")
                        break
                time.sleep(POLL_SECONDS)
        except KeyboardInterrupt:
            if detach_on_interrupt:
                follower.close()
                return follower.state, follower.status, True
            stopper.request()
        except Terminated:
            # Forced: followed on until the supervisor records the end, when nothing of the
            # run is left (a scheduler's step lasts while this process does).
            if supervisor.poll() is None:
                supervisor.send_signal(signal.SIGTERM)
            print(f"{PREFIX} stopping by force (SIGTERM)", file=out, flush=True)
            forced = True
    # The supervisor exits just after recording the end: this process outlives it.
    while forced and supervisor.poll() is None:
        time.sleep(POLL_SECONDS)
    return follower.state, follower.status, False


class Terminated(Exception):
    """SIGTERM to the front-end that owns a run (scancel sends it to every process of a job)."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise Terminated


def _follow_through_sigterm() -> None:
    """SIGTERM forces the run's stop and the front-end follows it to its end: under SLURM,
    once this process (the step's task) is gone, SLURM no longer tracks a supervisor in a
    session of its own (measured: the job left the queue while the run's processes lived)."""
    with contextlib.suppress(ValueError):  # not the main thread: SIGTERM stays as it was
        signal.signal(signal.SIGTERM, _raise_terminated)


DOCTOR_WAIT_SECONDS = 10


def run_doctor(
    settings: Settings, environ: Mapping[str, str], workdir: Path, out: TextIO | None = None
) -> int:
    """`vlm-tui doctor`: this node's topology and every pre-flight check; 1 if any fails."""
    out = out or sys.stdout  # looked up per call: tests and callers swap stdout
    hardware = probe_hardware(environ)
    topology = resolve_topology(environ, hardware.gpu_count, settings.gpus_per_node)
    for line in topology_lines(topology, detect(environ), topology.master_port):
        print(line, file=out)
    for note in topology.notes:
        print(f"{PREFIX} {note}", file=out)
    name = settings.output_model_name
    output_dir = output_dir_for(name, workdir) if name else (workdir / OUTPUTS_FOLDER).resolve()
    checks = doctor.local_checks(topology, hardware, output_dir, environ)
    # A quick look, not the launch's patient wait, unless a timeout was asked for.
    wait = (
        settings.rendezvous_timeout
        if "rendezvous_timeout" in settings.explicit
        else DOCTOR_WAIT_SECONDS
    )
    checks += doctor.network_checks(topology, wait_s=wait)
    for check in checks:
        print(doctor.check_line(check), file=out)
    failed = sum(check.outcome == "fail" for check in checks)
    warned = sum(check.outcome == "warn" for check in checks)
    print(f"{len(checks)} checks: {failed} failed, {warned} warnings", file=out)
    return 1 if failed else 0


def run(
    request: steps.LaunchRequest,
    environ: Mapping[str, str],
    workdir: Path,
    *,
    dry_run: bool = False,
    skip_check: bool = False,
    detach: bool = False,
    out: TextIO | None = None,
) -> int:
    """The whole headless job; UserError and SetupError propagate to the CLI as one line."""
    out = out or sys.stdout
    plan = steps.plan_run(request, environ, workdir)
    if plan.hardware.note:
        print(f"{PREFIX} {plan.hardware.note}", file=out)
    for note in plan.topology.notes:
        print(f"{PREFIX} {note}", file=out)

    def report(text: str) -> None:
        print(f"{PREFIX} {text}", file=out, flush=True)

    # A dry run checks the datasets too; a launch checks everything first.
    if dry_run:
        data = steps.prepare_data(plan, workdir, report)
    else:
        data = pre_launch.prepare(plan, environ, workdir, report, skip_check=skip_check)
    paths, launch_plan = steps.record_run(
        plan, environ, workdir, dry_run=dry_run, data=data, report=report
    )
    for line in topology_lines(plan.topology, plan.detection, launch_plan.port):
        print(line, file=out)
    print("", file=out)
    print(command_line(launch_plan.shown()), file=out)
    print(f"{PREFIX} run folder: {paths.root}", file=out, flush=True)
    for line in tracker_lines(paths):
        print(f"{PREFIX} {line}", file=out, flush=True)
    if dry_run:
        print(f"{PREFIX} dry run: config written to {paths.config}; nothing launched", file=out)
        return 0
    supervisor = steps.start_supervisor(paths, launch_plan)
    if detach:
        print(
            f"{PREFIX} Ctrl+C leaves the run going; vlm-tui stop {paths.run_id} stops it", file=out
        )
    return _follow_to_end(paths, supervisor, out, detach_on_interrupt=detach)


def _follow_to_end(
    paths: RunPaths,
    supervisor: SupervisorHandle,
    out: TextIO,
    *,
    detach_on_interrupt: bool,
    tick: Callable[[], None] | None = None,
) -> int:
    state, status, detached = follow(
        paths, supervisor, out, detach_on_interrupt=detach_on_interrupt, tick=tick
    )
    lines = detach_lines(paths) if detached else summary_lines(paths, state, status)
    for line in lines:
        print(line, file=out)
    out.flush()
    return INTERRUPTED if detached else exit_code_of(status)


def attach(paths: RunPaths, out: TextIO | None = None) -> int:
    """`vlm-tui attach --no-ui`: a run's whole output from its start, then live to its end.

    The run is not ours to stop from here: Ctrl+C detaches (`vlm-tui stop` stops it).
    """
    out = out or sys.stdout
    print(f"{PREFIX} attached to {paths.root}", file=out, flush=True)
    return _follow_to_end(paths, RecordedSupervisor(paths), out, detach_on_interrupt=True)


def attach_job(paths: RunPaths, job_id: str, out: TextIO | None = None) -> int:
    """`vlm-tui attach JOB_OR_RUN --no-ui` for a SLURM job: its queue state (a line each time
    it changes) while it waits, then its run as `attach` follows any, with its nodes' table
    each time a node comes or changes state. A job that ends before its run starts exits
    JOB_ENDED_UNSTARTED."""
    from vlm_tui.core.runs.job_control import JobHandle
    from vlm_tui.core.runs.job_follow import JobFollower

    out = out or sys.stdout
    print(f"{PREFIX} following SLURM job {job_id}: run folder {paths.root}", file=out, flush=True)
    job = JobFollower(paths, JobHandle(job_id))
    try:
        while not job.run_started():
            for line in job.queue_lines():
                print(f"{PREFIX} {line}", file=out, flush=True)
            if job.ended_unstarted():
                print(f"{PREFIX} {job.unstarted_line()}", file=out, flush=True)
                return JOB_ENDED_UNSTARTED
            time.sleep(JOB_POLL_SECONDS)
    except KeyboardInterrupt:
        for line in detach_lines(paths):
            print(line, file=out)
        return INTERRUPTED

    def tick() -> None:
        for line in [*job.queue_lines(), *job.node_lines()]:
            print(f"{PREFIX} {line}", file=out, flush=True)

    code = _follow_to_end(paths, job.handle, out, detach_on_interrupt=True, tick=tick)
    if code != INTERRUPTED:
        for line in job.end_lines():
            print(f"{PREFIX} {line}", file=out, flush=True)
    return code


def status(paths: RunPaths, out: TextIO | None = None) -> int:
    """`vlm-tui status RUN`: the run's state line, then its cluster table (one row a node)."""
    from vlm_tui.core.runs.cluster import cluster_view, table_lines
    from vlm_tui.core.runs.run_index import summarise

    out = out or sys.stdout
    summary = summarise(paths)
    state = summary.state
    parts = [state if summary.exit_code is None else f"{state} (exit {summary.exit_code})"]
    if summary.step:
        parts.append(f"step {summary.step}/{summary.total or '?'}")
    if summary.last_loss is not None:
        parts.append(f"loss {summary.last_loss:.4g}")
    if summary.runtime_s is not None:
        parts.append(f"runtime {clock(summary.runtime_s)}")
    print(f"{paths.run_id}: {'  '.join(parts)}", file=out)
    view = cluster_view(paths)
    print(f"nodes: {view.nodes} expected; heartbeats from {view.folder}", file=out)
    for line in table_lines(view):
        print(line, file=out)
    return 0


def stop(
    paths: RunPaths,
    *,
    force: bool,
    out: TextIO | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    """`vlm-tui stop RUN`: ask a run's supervisor to stop it (SIGINT), or force it (SIGTERM).
    A SLURM job's run is stopped through SLURM from outside the job, and inside it (the job
    script's trap runs this on every node) through this node's own supervisor."""
    from vlm_tui.core.runs.job_runs import job_id_of, this_node_folder

    out = out or sys.stdout
    job_id = job_id_of(paths)
    if job_id is not None:
        here = this_node_folder(paths, os.environ if environ is None else environ)
        if here is None:
            return _stop_job(paths, job_id, force=force, out=out)
        paths = here
    supervisor = RecordedSupervisor(paths)
    status = read_status(paths)
    if supervisor.poll() is not None:
        state = status.get("state", "unknown")
        print(f"{PREFIX} {paths.run_id} is not running ({state}); nothing to stop", file=out)
        return 1
    supervisor.send_signal(signal.SIGTERM if force else signal.SIGINT)
    how = (
        "by force (SIGTERM, then SIGKILL)"
        if force
        else "gracefully (it ends at its next step with a checkpoint and the model)"
    )
    print(f"{PREFIX} stopping {paths.run_id} {how}", file=out)
    return 0


def _stop_job(paths: RunPaths, job_id: str, *, force: bool, out: TextIO) -> int:
    from vlm_tui.core.runs.job_control import cancel
    from vlm_tui.core.runs.slurm_queue import PENDING, read_job_state

    state = read_job_state(job_id)
    if state.ended:
        print(f"{PREFIX} {state.line()}; nothing to stop", file=out)
        return 1
    # A pending job has nothing to save: stopping it is cancelling it.
    forced = force or state.state == PENDING
    refused = cancel(job_id, force=forced)
    if refused is not None:
        print(f"{PREFIX} cannot stop SLURM job {job_id}: {refused}", file=out)
        return 1
    how = (
        "cancelled (scancel: SIGTERM to every process of it, SIGKILL after the cluster's KillWait)"
        if forced
        else "asked to stop gracefully: every node's training saves a checkpoint and the model"
        " at its next step"
    )
    print(f"{PREFIX} SLURM job {job_id} of {paths.run_id} {how}", file=out)
    return 0
