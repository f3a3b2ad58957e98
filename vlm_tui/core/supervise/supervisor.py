"""The small process that owns one run: `python -m vlm_tui.core.supervise.supervisor RUN_FOLDER`.

It starts the training in a process group of its own with stdout and stderr going straight into
train.log (so the training keeps running and logging even if this process dies), follows that
file, and writes metrics.jsonl and status.json. Front-ends start it in a new session and then
only read the folder, so closing a terminal or killing a UI never touches the run.

Signals: SIGINT asks for a graceful stop; SIGTERM forces one (SIGTERM to the group, SIGKILL to
the group and every process below this one after a grace period; a launcher forwards SIGTERM to
its ranks).

A graceful stop is a file, not a signal, once the training's loop runs: the supervisor writes
stop-request into the run folder and every rank's graceful-stop plugin (vlm_tui/training/
graceful_stop.py) ends the loop at the next optimizer step, all ranks at the same one, with a
checkpoint and the weights, and exits 0. A signal would reach a launcher first (torchrun answers
SIGINT by killing its ranks 30 s later and exiting 1), and a raising handler can lose the stop.
Before the loop has started (loading, preparing data: nothing to save yet) SIGINT goes to the
training's group as before. The supervisor then watches: a training still stepping past the
request is signalled again, and one that still does not end gets a `stop_notice` in status.json
that the front-ends show, with how to force it; it never trains on silently.

Nothing the training started outlives it. torchrun puts each rank in a session of its own, out
of reach of a signal to the training's group, and a launcher that dies first leaves its ranks to
init. So on Linux this process is a child subreaper (such orphans become its children), it keeps
a list of every process seen below it, and when the training ends it SIGKILLs and reaps whatever
is left before it records the end: a recorded end means no process of the run is left.

Telemetry: a `NodeRecorder` thread writes this node's samples and heartbeat into the run folder
(node 0's, on other nodes) once a second, whatever the parsing is doing; its last heartbeat
carries the run's end state, so readers tell an ended node from a lost one.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any

import psutil

from vlm_tui.core.host.detection import verification_lines
from vlm_tui.core.output.chunk_reader import ChunkRecorder
from vlm_tui.core.output.run_state import RunState, parser_for_run
from vlm_tui.core.records.command_file import read_command, recorded_topology
from vlm_tui.core.records.folder import (
    STOP_REQUEST_VARIABLE,
    RunPaths,
    iso,
    moment_of,
    utc_now,
)
from vlm_tui.core.records.node_check_file import REFUSED
from vlm_tui.core.records.status_file import StatusWriter
from vlm_tui.core.runs.checkpoints import weights_saved_since
from vlm_tui.core.supervise import node_check
from vlm_tui.core.supervise.node_recorder import NodeRecorder
from vlm_tui.core.supervise.recording import LogRecording

POLL_SECONDS = 0.1
PARSE_NICENESS = 5
FORCE_GRACE_SECONDS = 10.0
# How long the end of a run waits for the processes it SIGKILLed to be gone.
REAP_SECONDS = 5.0
# Steps the training may still finish after a graceful stop was asked (the one under way, and
# one the request file may have just missed) before it is signalled again, and then called stuck.
STOP_STEP_SLACK = 2
# A graceful stop that has not ended the run by then (a save of a large model, a hung rank) is
# said to be slow on screen, with how to force it.
STOP_NOTICE_SECONDS = 300.0
# After a graceful stop, once axolotl has said the weights are saved, the training has nothing
# left to do but exit; a process still there this much later is stuck (seen once in about 60
# two-process CPU stops: one rank alive for minutes after the save) and is ended.
SAVED_EXIT_SECONDS = 30.0
# A run refused before training (its nodes differ) ends as a refused command line does.
REFUSED_EXIT_CODE = 2
PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h
AUTOGROUP = Path("/proc/self/autogroup")  # sched(7): absent without CONFIG_SCHED_AUTOGROUP


def become_subreaper() -> bool:
    """Linux: processes orphaned below this one (a rank whose launcher died) become its children.

    Without it they go to init, out of this process's tree; returns whether it took effect.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def lower_session_priority(niceness: int) -> None:
    """Linux with autogroup scheduling shares the CPU between sessions first: os.nice only ranks
    this process among its own session's, and the training runs in a session of its own. So the
    session's group (only the supervisor is in it) gets the same lower priority."""
    with contextlib.suppress(OSError):
        AUTOGROUP.write_text(f"{niceness}\n", encoding="ascii")


class Supervisor:
    def __init__(self, paths: RunPaths) -> None:
        self.paths = paths
        command = read_command(paths)
        if command is None:
            raise ValueError(f"{paths.command} is missing or unreadable")
        self.argv: list[str] = [str(part) for part in command["argv"]]
        self.cwd = str(command.get("cwd") or os.getcwd())
        self.parser = parser_for_run(command)
        self.topology = recorded_topology(command)
        self.state = RunState()
        self.status = StatusWriter(paths.status)
        self.child: subprocess.Popen[bytes] | None = None
        self.stop_requested: str | None = None
        # A graceful stop under way: when it was asked (monotonic s) and at which step, and the
        # step at which the training was signalled again for going on.
        self.graceful_asked: tuple[float, int] | None = None
        self.graceful_resent_at: int | None = None
        # When this supervisor first saw the weights saved during a graceful stop (monotonic s).
        self.graceful_saved_at: float | None = None
        # The training checks for stop-request (its environment names it; the plugin is in
        # every config vlm-tui writes) once it has written the armed marker.
        self.stop_by_file = os.environ.get(STOP_REQUEST_VARIABLE) == str(paths.stop_request)
        self.force_deadline: float | None = None
        self.launched_at = time.time()  # reset when the training is spawned
        # Every process seen below this one, by pid (psutil checks the start time, so a reused
        # pid is never signalled): the clean-up reaches them even once they have left the tree.
        self.seen: dict[int, psutil.Process] = {}
        # The pids below this one as last watched, for the telemetry thread: a new tuple each
        # time, so that thread never sees `seen` half updated.
        self.tree_pids: tuple[int, ...] = ()
        self.recorder = NodeRecorder(paths, self.topology, state=self._state, pids=self._tree)
        # Several nodes that vlm-tui launches compare their stacks before training (node_check).
        self.compares_nodes = command.get("mode") == "multi_node" and self.topology.nodes > 1
        self.nodes_wait_s = node_check.rendezvous_wait_s(self.argv)
        self.master_check: node_check.MasterCheck | None = None
        # The line naming the node that differs, once node 0 refused the run.
        self.refused: str | None = None

    def _state(self) -> str:
        return str(self.status.data.get("state") or "starting")

    def _tree(self) -> tuple[int, ...]:
        return self.tree_pids

    # Signals arrive on the main thread between polls; they only set flags and forward.
    def _on_graceful(self, signum: int, frame: FrameType | None) -> None:
        self.stop_requested = self.stop_requested or "graceful"
        if self.graceful_asked is None:
            self.graceful_asked = (time.monotonic(), self._step())
        if self.stop_by_file:
            with contextlib.suppress(OSError):
                self.paths.stop_request.write_text(iso(utc_now()) + "\n", encoding="ascii")
        if not (self.stop_by_file and self.paths.stop_armed.exists()):
            self._signal_group(signal.SIGINT)

    def _step(self) -> int:
        progress = self.state.progress
        return 0 if progress is None else progress.step

    def _watch_graceful_stop(self, now: float) -> None:
        """A graceful stop is carried through or said to be stuck, never silently dropped."""
        if self.graceful_asked is None or self.stop_requested != "graceful":
            return
        asked_at, asked_step = self.graceful_asked
        step = self._step()
        # Taken: the loop is ending and the saves are under way; only their time is watched.
        # (The step read here can lag the training's by the parse delay, so steps past the
        # request alone do not say it was missed.)
        watching_steps = not (self.stop_by_file and self.paths.stop_taken.exists())
        notice = None
        if (
            watching_steps
            and self.graceful_resent_at is None
            and step > asked_step + (STOP_STEP_SLACK)
        ):
            self.graceful_resent_at = step
            self._signal_group(signal.SIGINT)
            notice = (
                f"the training went on to step {step} after the stop was asked at step"
                f" {asked_step}; signalled it again"
            )
        elif (
            watching_steps
            and self.graceful_resent_at is not None
            and step > self.graceful_resent_at + STOP_STEP_SLACK
        ):
            notice = (
                f"the graceful stop was not taken: still training at step {step};"
                f" force it with vlm-tui stop --force {self.paths.run_id} (K in the monitor)"
            )
        if self.state.model_saved_to is not None and self.graceful_saved_at is None:
            self.graceful_saved_at = now
        if (
            notice is None
            and self.graceful_saved_at is not None
            and now - self.graceful_saved_at >= SAVED_EXIT_SECONDS
            and self.force_deadline is None
        ):
            self._signal_group(signal.SIGTERM)
            self.force_deadline = now + FORCE_GRACE_SECONDS
            notice = (
                f"the weights were saved, but a training process had not exited"
                f" {int(SAVED_EXIT_SECONDS)} s later; vlm-tui ended it"
            )
        if notice is None and now - asked_at >= STOP_NOTICE_SECONDS:
            notice = (
                f"stopping for {int(now - asked_at)} s (a large model takes a while to save);"
                f" force it with vlm-tui stop --force {self.paths.run_id} (K in the monitor)"
            )
        if notice is not None and notice != self.status.data.get("stop_notice"):
            self.status.update(stop_notice=notice)

    def _on_force(self, signum: int, frame: FrameType | None) -> None:
        self.stop_requested = "force"
        self._signal_group(signal.SIGTERM)
        if self.force_deadline is None:
            self.force_deadline = time.monotonic() + FORCE_GRACE_SECONDS

    def _signal_group(self, signum: int, *, after_exit: bool = False) -> None:
        if self.child is not None and (after_exit or self.child.returncode is None):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.child.pid, signum)

    def _watch_tree(self) -> list[psutil.Process]:
        """The live processes below this one, and every one seen before that still runs."""
        try:
            below = psutil.Process().children(recursive=True)
        except psutil.Error:
            below = []
        for process in below:
            self.seen[process.pid] = process
        running = [process for process in self.seen.values() if process.is_running()]
        self.seen = {process.pid: process for process in running}
        self.tree_pids = tuple(process.pid for process in running)
        return running

    def _signal_tree(self, signum: int) -> list[psutil.Process]:
        processes = self._watch_tree()
        for process in processes:
            with contextlib.suppress(psutil.Error):
                process.send_signal(signum)
        return processes

    def _reap_orphans(self) -> None:
        """Orphans handed to this subreaper that have exited; the training itself is Popen's."""
        try:
            children = psutil.Process().children()
        except psutil.Error:
            return
        for process in children:
            if self.child is not None and process.pid == self.child.pid:
                continue
            with contextlib.suppress(psutil.Error, ChildProcessError):
                if process.status() == psutil.STATUS_ZOMBIE:
                    os.waitpid(process.pid, os.WNOHANG)

    def _clean_up(self) -> None:
        """SIGKILL whatever the training left (its group, every process below this one), reaped.

        A killed rank's own children come to this subreaper only once the rank is gone, so the
        wait reaps as it goes until nothing is left (at most REAP_SECONDS).
        """
        self._signal_group(signal.SIGKILL, after_exit=True)
        left = self._signal_tree(signal.SIGKILL)
        deadline = time.monotonic() + REAP_SECONDS
        while left:
            self._reap_orphans()
            left = [process for process in left if process.is_running()]
            if not left or time.monotonic() >= deadline:
                break
            time.sleep(0.02)

    def run(self) -> int:
        signal.signal(signal.SIGINT, self._on_graceful)
        signal.signal(signal.SIGTERM, self._on_force)
        # The terminal that started us may go away; that must not end the run.
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        become_subreaper()
        self.status.update(state="starting", supervisor_pid=os.getpid())
        # Started before the parsing lowers its priority below: on Linux a thread keeps the
        # niceness it was created with, so heartbeats keep the normal one.
        self.recorder.start()
        nodes_line = self._check_nodes_before_launch()
        if nodes_line and (self.refused is not None or self.stop_requested):
            append_log_line(self.paths.log, nodes_line)
        if self.refused is not None:
            return self._record_refusal()
        if self.stop_requested:
            # Stopped while waiting for node 0's verdict: nothing was started.
            self.recorder.stop("stopped")
            self.status.update(
                state="stopped",
                exit_code=0,
                ended_at=iso(utc_now()),
                stop_requested=self.stop_requested,
                supervisor_cpu_s=own_cpu_seconds(),
            )
            return 0
        with self.paths.log.open("ab") as log_sink:
            log_sink.write(self._verification_text().encode())
            if nodes_line:
                log_sink.write(f"{nodes_line}\n".encode())
            log_sink.flush()
            self.launched_at = time.time()
            try:
                self.child = subprocess.Popen(
                    self.argv,
                    cwd=self.cwd,
                    env=os.environ.copy(),
                    stdin=subprocess.DEVNULL,
                    stdout=log_sink,
                    stderr=subprocess.STDOUT,
                    # Its own group: stop signals reach the training and every process it forks.
                    start_new_session=True,
                )
            except OSError as error:
                self.recorder.stop("failed")
                self.status.update(
                    state="failed",
                    exit_code=127,
                    ended_at=iso(utc_now()),
                    reason=f"could not start {self.argv[0]}: {error.strerror or error}",
                    supervisor_cpu_s=own_cpu_seconds(),
                )
                return 127
        self.status.update(
            state="running",
            child_pid=self.child.pid,
            child_pgid=self.child.pid,
            started_at=iso(utc_now()),
        )
        # Parsing is bookkeeping: under a flood of output it yields the CPU to the training
        # (started above, so it keeps its own priority) and to the screen watching it.
        with contextlib.suppress(OSError):
            os.nice(PARSE_NICENESS)
        lower_session_priority(PARSE_NICENESS)
        with self.paths.log.open("rb") as log_source, self.paths.metrics.open("a") as metrics:
            recorder = ChunkRecorder(self.parser, self.state, metrics)
            return self._follow(LogRecording(log_source, recorder))

    def _verification_text(self) -> str:
        """The guide's verification lines, first in train.log so every front-end shows them."""
        world_size = self.topology.world_size or 1
        if world_size <= 1:
            return ""
        lines = verification_lines(
            world_size,
            self.topology.global_rank,
            self.topology.local_rank,
            datetime.now(),
        )
        return "".join(line + "\n" for line in lines)

    def _follow(self, recording: LogRecording) -> int:
        assert self.child is not None
        while True:
            exit_code = self.child.poll()
            read = recording.read_once()
            now = time.monotonic()
            if self.force_deadline is not None and now >= self.force_deadline:
                self._signal_group(signal.SIGKILL)
                self._signal_tree(signal.SIGKILL)
                self.force_deadline = None
            if exit_code is not None and not read:
                break
            if recording.status_due(now):
                self.status.update(**self.state.status_fields(), **self._cluster_fields())
                if exit_code is None:
                    self._watch_graceful_stop(now)
                    self._poll_master_check(now)
                self._watch_tree()
                self._reap_orphans()
            if not read:
                time.sleep(POLL_SECONDS)
        recording.finish()
        # Workers the training forked (data loaders, ranks) must not outlive it; they are gone
        # before the end is recorded, so "stopped" means nothing of the run is left.
        self._clean_up()
        try:
            return self._finish(exit_code)
        except Exception as error:
            # A bug of ours in the bookkeeping must not lose the end: the training has ended.
            self.status.update(
                state=self._end_state(exit_code),
                exit_code=exit_code,
                ended_at=iso(utc_now()),
                stop_requested=self.stop_requested,
                reason=f"vlm-tui could not record the whole end: {type(error).__name__}: {error}",
            )
            return exit_code

    def _end_state(self, exit_code: int) -> str:
        if self.refused is not None:
            return "failed"
        if self.stop_requested:
            return "stopped"
        return "finished" if exit_code == 0 else "failed"

    def _finish(self, exit_code: int) -> int:
        if self.refused is not None:
            return self._record_refusal()
        state = self._end_state(exit_code)
        reason = None if exit_code == 0 else self._failure_reason(exit_code)
        if state == "failed":
            # A training killed outright (the OOM killer) prints nothing: its exit code speaks.
            self.state.failures.feed_exit(exit_code)
        hint = self.state.failure_fields() if state == "failed" else {}
        nothing = self.state.nothing_trained() if state == "finished" else None
        if nothing is not None:
            # Exit 0 and a loss of 0 look like success; a run that updated no weight is not one.
            state, reason = "failed", "nothing was trained"
            hint = {"hint": "nothing_trained", "cause": nothing[0], "fix": nothing[1]}
        launcher_code = None
        if self.stop_requested == "graceful":
            self._note_saved_by_the_stop()
            if exit_code != 0 and self.state.model_saved_to is not None:
                # Asked and done: the weights are saved. A launcher that got the SIGINT itself
                # (a scheduler signals every process of a job step) exits 1 from torchrun's
                # SignalException although every rank ended its loop and saved; the user asked
                # for this end, so it is recorded as a single process's graceful stop is.
                launcher_code, exit_code, reason = exit_code, 0, None
        # The last heartbeat first: once status.json says the run ended, it says so too.
        self.recorder.stop(state)
        self.status.update(
            **self._cluster_fields(),
            **self.state.status_fields(),
            **hint,
            state=state,
            exit_code=exit_code,
            ended_at=iso(utc_now()),
            stop_requested=self.stop_requested,
            reason=reason,
            supervisor_cpu_s=own_cpu_seconds(),
            **({} if launcher_code is None else {"launcher_exit_code": launcher_code}),
        )
        return exit_code

    def _check_nodes_before_launch(self) -> str | None:
        """This node's record for the cross-node check; on node k, node 0's verdict, waited for
        (a refusal sets `refused`). Returns the line for train.log, if any."""
        if not self.compares_nodes:
            return None
        own = node_check.node_record(
            self.topology.node_rank, socket.gethostname(), self.paths.config, os.environ
        )
        if self.topology.node_rank == 0:
            self.master_check = node_check.MasterCheck(
                self.paths, self.topology.nodes, self.nodes_wait_s
            )
            self.master_check.record(own)
            return None
        verdict = node_check.worker_verdict(
            self.paths,
            self.topology,
            moment_of(self.status.data.get("created_at")),
            own,
            wait_s=self.nodes_wait_s,
            cancelled=lambda: self.stop_requested is not None,
        )
        self.status.update(node_check=verdict.line)
        if verdict.outcome == REFUSED:
            self.refused = f"node 0 refused the run: {verdict.line}"
        return f"[vlm-tui] nodes: {verdict.line}"

    def _poll_master_check(self, now: float) -> None:
        """Node 0: the verdict once every node recorded; a refusal ends the training, still
        waiting in the rendezvous (the other nodes start theirs only after the verdict)."""
        check = self.master_check
        if check is None or check.verdict is not None:
            return
        started = self.paths.stop_armed.exists() or self.state.progress is not None
        verdict = check.poll(training_started=started)
        if verdict is None:
            return
        self.status.update(node_check=verdict.line)
        append_log_line(self.paths.log, f"[vlm-tui] nodes: {verdict.line}")
        if verdict.outcome == REFUSED:
            self.refused = verdict.line
            self._signal_group(signal.SIGTERM)
            if self.force_deadline is None:
                self.force_deadline = now + FORCE_GRACE_SECONDS

    def _record_refusal(self) -> int:
        """The run refused before training: failed, exit 2, the line naming the node."""
        self.recorder.stop("failed")
        self.status.update(
            state="failed",
            exit_code=REFUSED_EXIT_CODE,
            ended_at=iso(utc_now()),
            reason=self.refused,
            supervisor_cpu_s=own_cpu_seconds(),
        )
        return REFUSED_EXIT_CODE

    def _note_saved_by_the_stop(self) -> None:
        """model_saved_to after a graceful stop: axolotl's SIGINT handler saves the weights into
        output_dir without naming it, so weights written there since the launch speak for it."""
        output_dir = self.status.data.get("output_dir")
        if self.state.model_saved_to or not isinstance(output_dir, str) or not output_dir:
            return
        # Two seconds of slack for file systems that keep coarse or server-set times.
        if weights_saved_since(Path(output_dir), self.launched_at - 2.0):
            self.state.model_saved_to = output_dir

    def _cluster_fields(self) -> dict[str, Any]:
        """Where this node's telemetry went, once it writes into node 0's run folder."""
        cluster_run = self.recorder.cluster_run
        return {} if cluster_run is None else {"cluster_run": cluster_run}

    def _failure_reason(self, exit_code: int) -> str:
        if exit_code < 0:
            try:
                name = signal.Signals(-exit_code).name
            except ValueError:
                name = f"signal {-exit_code}"
            how = f"killed by {name}"
        else:
            how = f"exited with code {exit_code}"
        if self.state.last_error:
            return f"{self.state.last_error} ({how})"
        return f"training {how}"


def append_log_line(log: Path, line: str) -> None:
    """One line of ours into train.log while the training writes to it too (both append), on a
    line of its own even where the training's last line is not ended yet."""
    with log.open("ab") as sink:
        ends_line = sink.tell() == 0
        if not ends_line:
            with log.open("rb") as source:
                source.seek(-1, os.SEEK_END)
                ends_line = source.read(1) == b"\n"
        sink.write(f"{'' if ends_line else chr(10)}{line}\n".encode())


def own_cpu_seconds() -> float:
    """CPU seconds this process (every thread of it) has used, user and system."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return round(usage.ru_utime + usage.ru_stime, 3)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m vlm_tui.core.supervise.supervisor RUN_FOLDER", file=sys.stderr)
        return 2
    return Supervisor(RunPaths(Path(args[0]))).run()


if __name__ == "__main__":
    raise SystemExit(main())
