"""The monitor screen: a run's log, loss chart, progress, GPUs, nodes, state, and its keys.

One thread worker does everything slow: the checks before launch, creating the run folder,
starting the supervisor, then following the run folder. It parses nothing of the training's
output: the supervisor already did, into metrics.jsonl and status.json, which the worker reads
along with train.log split into lines. It hands the UI small batches through
`call_from_thread`, which waits for the UI to take each one, so a flood of output slows the
reader, never the screen. A SLURM job's run (its folder holds job.json) is followed from its
place in the queue: the worker asks SLURM (never the UI thread), waits while the job is pending
and node 0 has recorded nothing, and the stop keys go through SLURM (scancel). The GPU panel
and the cluster table (every node's heartbeat, read from the run folder) poll in workers of
their own, once a second. The run itself belongs to its supervisor: leaving this screen or
quitting the app leaves it running.
"""

from __future__ import annotations

import math
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import yaml
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Header, ProgressBar, Static
from textual.worker import get_current_worker

from vlm_tui.core.errors import SetupError, UserError
from vlm_tui.core.host.detection import command_line, topology_lines
from vlm_tui.core.host.telemetry import Telemetry
from vlm_tui.core.launch import pre_launch, steps
from vlm_tui.core.launch.command import LaunchPlan
from vlm_tui.core.output.loss_history import LossHistory, LossSeries
from vlm_tui.core.output.output_parser import Progress
from vlm_tui.core.output.run_state import EVAL_LOSS_KEY, TOKENS_PER_SECOND_KEY
from vlm_tui.core.records.command_file import read_command, recorded_topology
from vlm_tui.core.records.folder import TERMINAL_STATES, RunPaths
from vlm_tui.core.records.metrics_file import EVAL, metric_point
from vlm_tui.core.records.status_file import read_status, recorded_progress
from vlm_tui.core.records.trackers_file import tracker_lines, tracker_names
from vlm_tui.core.request.axolotl_config import CHECKPOINT_TRIGGER_FILE
from vlm_tui.core.runs.control import RecordedSupervisor, SupervisorHandle
from vlm_tui.core.runs.follow import RecordFollower
from vlm_tui.core.runs.job_control import JobHandle
from vlm_tui.core.runs.job_follow import END_WAIT_S, JobFollower
from vlm_tui.core.runs.job_runs import job_id_of
from vlm_tui.core.runs.slurm_queue import PENDING
from vlm_tui.core.text.run_lines import ProgressFigures, outcome_lines, progress_line, state_line
from vlm_tui.tui.hand_over import on_ui
from vlm_tui.tui.setup_values import error_text
from vlm_tui.tui.widgets.cluster_table import ClusterTable
from vlm_tui.tui.widgets.gpu_panel import GpuPanel
from vlm_tui.tui.widgets.log_view import LogView
from vlm_tui.tui.widgets.loss_chart import LossChart

PREFIX = "[vlm-tui]"
POLL_SECONDS = 0.1
# Bytes of train.log parsed per hand-over: small batches keep each UI update short.
BATCH_BYTES = 256 * 1024
CHART_EVERY_SECONDS = 0.5
# A SLURM job's queue is asked at most every few seconds (QueueWatcher); its run folder is
# looked at for node 0's records more often.
JOB_POLL_SECONDS = 0.5
WAITING_FOR_RUN = "waiting for the job's node 0 to start the run"


@dataclass
class RunView:
    """What the screen shows of a run, updated by `absorb` from the worker's hand-overs."""

    samples_per_step: int
    world_size: int
    progress: Progress | None = None
    last_loss: float | None = None
    learning_rate: float | None = None
    tokens_per_second_per_gpu: float | None = None
    # Only counted here: the points themselves live in the chart, which bounds them.
    loss_points: int = 0
    status: dict[str, Any] = field(default_factory=dict)
    ended: bool = False
    # A SLURM job's place in the queue as last read, and why its run never started.
    queue_line: str = ""
    unstarted: str = ""

    def progress_line(self) -> str:
        progress = self.progress
        if progress is None:
            return progress_line(None)
        tokens = self.tokens_per_second_per_gpu
        return progress_line(
            ProgressFigures(
                step=progress.step,
                total=progress.total,
                remaining_s=progress.remaining_s,
                steps_per_second=progress.steps_per_second,
                samples_per_step=self.samples_per_step,
                tokens_per_second=None if tokens is None else tokens * self.world_size,
                loss=self.last_loss,
                learning_rate=self.learning_rate,
            )
        )

    def state_lines(self) -> list[str]:
        queue = [self.queue_line] if self.queue_line else []
        if self.unstarted:
            return [self.unstarted]
        if queue and not self.status:
            return [*queue, WAITING_FOR_RUN]
        return [*queue, state_line(self.status), *outcome_lines(self.status, ended=self.ended)]


@dataclass(frozen=True)
class HandOver:
    """One batch from the worker: new log lines and what changed in the run's state."""

    lines: list[str]
    progress: Progress | None
    last_loss: float | None
    learning_rate: float | None
    tokens_per_second_per_gpu: float | None
    new_loss_points: int
    chart: LossSeries | None  # the whole curve to draw, when it is due for a redraw
    status: dict[str, Any]
    ended: bool


def _progress(status: Mapping[str, Any]) -> Progress | None:
    """The trainer's bar as the supervisor last recorded it in status.json."""
    recorded = recorded_progress(status)
    if recorded is None:
        return None
    return Progress(
        step=recorded.step,
        total=recorded.total,
        steps_per_second=recorded.steps_per_second,
        elapsed_s=recorded.elapsed_s,
        remaining_s=recorded.remaining_s,
        description="",
    )


@dataclass
class _Figures:
    """The worker's running figures, from metrics.jsonl records and status.json."""

    last_loss: float | None = None
    learning_rate: float | None = None
    tokens_per_second_per_gpu: float | None = None
    # The curve is smoothed and folded here, in the worker, so the UI thread only draws it.
    history: LossHistory = field(default_factory=LossHistory)
    chart_due: float = 0.0
    chart_behind: bool = False

    def hand_over(
        self,
        lines: list[str],
        records: list[dict[str, Any]],
        status: dict[str, Any],
        ended: bool,
    ) -> HandOver:
        losses: list[tuple[int, float]] = []
        rates: list[tuple[int, float]] = []
        evals: list[tuple[int, float]] = []
        for record in records:
            point = metric_point(record)
            if point is None:
                continue
            step = point.step
            if point.kind == EVAL:
                eval_loss = point.get(EVAL_LOSS_KEY)
                if eval_loss is not None:
                    evals.append((step, eval_loss))
                continue
            loss = point.get("loss")
            if loss is not None:
                self.last_loss = loss
                losses.append((step, loss))
            rate = point.get("learning_rate")
            if rate is not None:
                self.learning_rate = rate
                rates.append((step, rate))
            tokens = point.get(TOKENS_PER_SECOND_KEY)
            if tokens is not None and math.isfinite(tokens):
                self.tokens_per_second_per_gpu = tokens
        if losses or rates or evals:
            self.history.extend(losses, rates, evals)
            self.chart_behind = True
        # The chart redraws at most twice a second, however fast points arrive.
        chart = None
        now = time.monotonic()
        if self.chart_behind and (now >= self.chart_due or ended):
            chart = self.history.series()
            self.chart_behind = False
            self.chart_due = now + CHART_EVERY_SECONDS
        return HandOver(
            lines=lines,
            progress=_progress(status),
            last_loss=self.last_loss,
            learning_rate=self.learning_rate,
            tokens_per_second_per_gpu=self.tokens_per_second_per_gpu,
            new_loss_points=len(losses),
            chart=chart,
            status=status,
            ended=ended,
        )


class MonitorScreen(Screen[None]):
    # The cluster table's lines come out of the log's share of the screen, not the chart's.
    DEFAULT_CSS = """
    #monitor-bottom {
        height: 3fr;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "stop", "Stop (saves)"),
        Binding("K", "force_stop", "Force stop"),
        Binding("c", "checkpoint", "Checkpoint now"),
        Binding("r", "resume", "Resume"),
        Binding("f", "follow", "Follow log"),
        Binding("slash", "filter", "Filter log"),
        Binding("l", "log_scale", "Log scale"),
        Binding("t", "try_model", "Try the model"),
        Binding("b", "back", "Back to setup"),
    ]

    def __init__(
        self,
        plan: steps.RunPlan | None,
        environ: Mapping[str, str],
        workdir: Path,
        skip_check: bool = False,
        *,
        run_folder: RunPaths | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        """Launch `plan`, or (plan None) follow an existing `run_folder` without launching."""
        super().__init__()
        if plan is None and run_folder is None:
            raise ValueError("a plan to launch or a run folder to follow is needed")
        self.plan = plan
        self.environ = dict(environ)
        self.workdir = workdir
        self.skip_check = skip_check
        if plan is not None:
            per_step, world = _samples_per_step(plan.config, plan.topology.world_size)
        else:
            per_step, world = _recorded_shape(run_folder)
        self.view = RunView(samples_per_step=per_step, world_size=world)
        self.paths: RunPaths | None = run_folder
        self.supervisor: SupervisorHandle | None = None
        # A SLURM job's run (job.json): followed from its place in the queue, steered by SLURM.
        self.job: JobFollower | None = None
        job_id = job_id_of(run_folder) if run_folder is not None else None
        if run_folder is not None and job_id is not None:
            self.job = JobFollower(run_folder, JobHandle(job_id))
        if run_folder is not None:
            recorded = read_status(run_folder)
            if recorded.get("state") not in TERMINAL_STATES:
                # Started elsewhere (another UI, a killed one, --no-ui): still ours to steer;
                # a job's processes are on its nodes, not here: SLURM carries the signals.
                self.supervisor = (
                    self.job.handle if self.job is not None else RecordedSupervisor(run_folder)
                )
        self.refused: str | None = None
        self.telemetry = telemetry
        self._shown_progress = ""
        self._shown_state = ""

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="monitor-top"):
            yield LossChart(id="loss-chart")
            with Vertical(id="monitor-side"):
                yield Static("starting", id="run-state", markup=False)
                # Empty, not indeterminate, until the first step: Textual animates an
                # indeterminate bar at 15 fps, which was most of the monitor's CPU while a
                # training loads (minutes for a large model) and forever after an early failure.
                yield ProgressBar(total=1, id="progress", show_eta=False)
                yield Static("", id="progress-line", markup=False)
                yield GpuPanel(self.telemetry, id="gpu-panel")
        with Vertical(id="monitor-bottom"):
            yield ClusterTable(self.paths, id="cluster-table")
            yield LogView(id="log-view")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "vlm-tui"
        if self.plan is None:
            assert self.paths is not None
            self.sub_title = _run_title(self.paths)
            if self.job is not None:
                # Its trackers are said once node 0 has recorded the run (the worker reads them).
                job_id = self.job.handle.job_id
                self._add_lines([f"{PREFIX} following SLURM job {job_id}: {self.paths.root}"])
            else:
                self._add_lines([f"{PREFIX} {line}" for line in tracker_lines(self.paths)])
            self._watch()
            return
        self.sub_title = f"run: {self.plan.settings.output_model_name or self.plan.output_dir.name}"
        self._run()

    # ---- the worker -------------------------------------------------------------------

    def _hand(self, method: Any, *args: Any) -> bool:
        return on_ui(self.app, method, *args)

    @work(thread=True, exclusive=True, group="run", exit_on_error=False)
    def _watch(self) -> None:
        assert self.paths is not None
        if self.job is not None:
            self._follow_job(self.job)
            return
        self._follow(self.paths, self.supervisor)

    def _follow_job(self, job: JobFollower) -> None:
        """A SLURM job's run: its queue state while it waits (no run record yet), then its run
        folder as any run's, the queue state still said as it changes, then how the job ended."""
        worker = get_current_worker()

        def show_queue() -> None:
            # scontrol runs here, in the worker, at most every few seconds (QueueWatcher).
            for line in job.queue_lines():
                self._hand(self._show_queue, line)

        while not job.run_started():
            show_queue()
            if job.ended_unstarted():
                self._hand(self._ended_unstarted, job.unstarted_line())
                return
            if worker.is_cancelled:
                return
            time.sleep(JOB_POLL_SECONDS)
        records = (_recorded_shape(job.paths), _run_title(job.paths), tracker_lines(job.paths))
        self._hand(self._job_run_started, *records)
        self._follow(job.paths, job.handle, tick=show_queue)
        # Node 0 records its end before the other nodes and SLURM are done with the job.
        deadline = time.monotonic() + END_WAIT_S
        while not worker.is_cancelled and job.handle.poll() is None:
            if time.monotonic() >= deadline:
                break
            time.sleep(JOB_POLL_SECONDS)
        show_queue()

    @work(thread=True, exclusive=True, group="run", exit_on_error=False)
    def _run(self) -> None:
        worker = get_current_worker()
        assert self.plan is not None

        def report(text: str) -> None:
            self._hand(self._add_lines, [f"{PREFIX} {text}"])

        data = None
        try:
            data = pre_launch.prepare(
                self.plan, self.environ, self.workdir, report, skip_check=self.skip_check
            )
            if worker.is_cancelled:
                data.discard()
                return
            paths, launch_plan = steps.record_run(
                self.plan, self.environ, self.workdir, dry_run=False, data=data, report=report
            )
        except (UserError, SetupError) as error:
            if data is not None:
                data.discard()
            self._hand(
                self._refuse, error_text(error) if isinstance(error, UserError) else str(error)
            )
            return
        supervisor = steps.start_supervisor(paths, launch_plan)
        self._hand(self._started, paths, launch_plan, supervisor)
        self._follow(paths, supervisor)

    def _follow(
        self,
        paths: RunPaths,
        supervisor: SupervisorHandle | None,
        tick: Callable[[], None] | None = None,
    ) -> None:
        """Follow the run folder to the run's end; `tick` runs each round, in this worker."""
        worker = get_current_worker()
        follower = RecordFollower(paths)
        figures = _Figures()
        last_status: dict[str, Any] | None = None
        while not worker.is_cancelled:
            if tick is not None:
                tick()
            batch = follower.poll(max_bytes=BATCH_BYTES)
            ended = batch.ended
            if not ended and batch.empty and supervisor and supervisor.poll() is not None:
                batch = follower.poll()
                ended = batch.ended
                if not ended:
                    follower.status.setdefault("reason", "the run's supervisor died")
                    ended = True
            # An idle run (loading, saving) hands nothing over: the screen stays idle too.
            if batch.empty and not ended and follower.status == last_status:
                if figures.chart_behind:
                    self._hand(self._show_chart, figures.hand_over([], [], last_status, False))
                time.sleep(POLL_SECONDS)
                continue
            last_status = dict(follower.status)
            hand_over = figures.hand_over(batch.lines, batch.metrics, last_status, ended)
            if not self._hand(self._absorb, hand_over) or ended:
                break
            if batch.empty:
                time.sleep(POLL_SECONDS)
        follower.close()

    # ---- on the UI --------------------------------------------------------------------

    def _add_lines(self, lines: list[str]) -> None:
        self.query_one(LogView).add_lines(lines)

    def _refuse(self, text: str) -> None:
        self.refused = text
        self.view.status = {"state": "refused", "reason": text}
        self._add_lines([f"{PREFIX} not launched: {text}", f"{PREFIX} press b to fix the setup"])
        self._show_state()
        self.app.bell()

    def _show_queue(self, line: str) -> None:
        self.view.queue_line = line
        self._show_state()

    def _ended_unstarted(self, line: str) -> None:
        self.view.unstarted = line
        self.view.ended = True
        self._add_lines([f"{PREFIX} {line}"])
        self._show_state()

    def _job_run_started(self, shape: tuple[int, int], title: str, trackers: list[str]) -> None:
        """Node 0 recorded the job's run: its batch shape and trackers are known now."""
        self.view.samples_per_step, self.view.world_size = shape
        self.sub_title = title
        self._add_lines([f"{PREFIX} the job's run started", *(f"{PREFIX} {t}" for t in trackers)])

    def _started(
        self, paths: RunPaths, launch_plan: LaunchPlan, supervisor: subprocess.Popen[bytes]
    ) -> None:
        assert self.plan is not None
        self.paths = paths
        self.supervisor = supervisor
        runs = getattr(self.app, "started_runs", None)
        if isinstance(runs, list):
            runs.append((paths.root, supervisor))
        lines = topology_lines(self.plan.topology, self.plan.detection, launch_plan.port)
        lines += ["", command_line(launch_plan.shown()), f"{PREFIX} run folder: {paths.root}"]
        self._add_lines([*lines, *(f"{PREFIX} {line}" for line in tracker_lines(paths))])
        self.sub_title = _run_title(paths)
        self.query_one(ClusterTable).follow(paths)

    def _absorb(self, hand_over: HandOver) -> None:
        view = self.view
        if hand_over.lines:
            self.query_one(LogView).add_lines(hand_over.lines)
        view.progress = hand_over.progress
        view.last_loss = hand_over.last_loss
        view.learning_rate = hand_over.learning_rate
        view.tokens_per_second_per_gpu = hand_over.tokens_per_second_per_gpu
        view.loss_points += hand_over.new_loss_points
        view.status = hand_over.status
        view.ended = hand_over.ended
        self._show_chart(hand_over)
        progress = view.progress
        if progress is not None and progress.total:
            bar = self.query_one(ProgressBar)
            if (bar.total, bar.progress) != (progress.total, progress.step):
                bar.update(total=progress.total, progress=progress.step)
        line = view.progress_line()
        if line != self._shown_progress:
            # A fixed-height box: new text repaints it without a layout pass of the screen.
            self.query_one("#progress-line", Static).update(line, layout=False)
            self._shown_progress = line
        self._show_state()

    def _show_chart(self, hand_over: HandOver) -> None:
        if hand_over.chart is not None:
            self.query_one(LossChart).show(hand_over.chart)

    def _show_state(self) -> None:
        widget = self.query_one("#run-state", Static)
        lines = "\n".join(self.view.state_lines())
        if lines == self._shown_state:
            return
        self._shown_state = lines
        widget.update(lines)
        state = "failed" if self.view.unstarted else str(self.view.status.get("state", ""))
        for name in ("finished", "failed", "stopped", "refused"):
            widget.set_class(state == name, f"-{name}")

    @property
    def live(self) -> bool:
        """A run this screen started and whose end is not recorded yet."""
        return self.supervisor is not None and not self.view.ended

    # ---- keys -------------------------------------------------------------------------

    def _signal(self, signum: int, what: str) -> None:
        if not self.live or self.supervisor is None:
            self.notify("no live run to stop", severity="warning")
            return
        if self.job is not None:
            self._signal_job(self.job.handle, signum)
            return
        self.supervisor.send_signal(signum)
        self._add_lines([f"{PREFIX} {what}"])

    @work(thread=True, exclusive=True, group="job-stop", exit_on_error=False)
    def _signal_job(self, handle: JobHandle, signum: int) -> None:
        """scancel, in a worker: the login node holds none of the job's processes."""
        state = handle.watcher.state
        # A pending job has nothing to save: stopping it is cancelling it.
        pending = state is not None and state.state == PENDING
        forced = signum != signal.SIGINT or pending
        handle.send_signal(signal.SIGTERM if forced else signal.SIGINT)
        job = f"SLURM job {handle.job_id}"
        if handle.refused is not None:
            line = f"cannot stop {job}: {handle.refused}"
        elif pending:
            line = f"{job} cancelled while it waited in the queue (scancel)"
        elif forced:
            line = f"{job} cancelled (scancel): SIGTERM to every process of it, then SIGKILL"
        else:
            line = f"{job} asked to stop gracefully: every node saves at its next step"
        self._hand(self._add_lines, [f"{PREFIX} {line}"])

    def action_stop(self) -> None:
        self._signal(
            signal.SIGINT,
            "stopping gracefully: at the next step the training saves a checkpoint and the model",
        )

    def action_force_stop(self) -> None:
        self._signal(signal.SIGTERM, "stopping by force: SIGTERM, then SIGKILL after a grace")

    def action_checkpoint(self) -> None:
        output = self.view.status.get("output_dir")
        if not self.live or not output:
            self.notify("no live run to checkpoint", severity="warning")
            return
        if str(self.view.status.get("state")) in TERMINAL_STATES:
            return
        try:
            (Path(str(output)) / CHECKPOINT_TRIGGER_FILE).touch()
        except OSError as error:
            self.notify(f"cannot request a checkpoint: {error}", severity="error")
            return
        self._add_lines([f"{PREFIX} checkpoint requested: saved after the next step"])

    def action_resume(self) -> None:
        state = str(self.view.status.get("state", ""))
        if self.paths is None or not self.view.ended or state not in ("stopped", "failed"):
            self.notify("only a stopped or failed run can be resumed", severity="warning")
            return
        self._plan_resume(self.paths)

    @work(thread=True, exclusive=True, group="resume", exit_on_error=False)
    def _plan_resume(self, paths: RunPaths) -> None:
        try:
            plan = steps.plan_run(steps.resume_request(paths), self.environ, self.workdir)
        except UserError as error:
            self._hand(self._resume_refused, error.message)
            return
        except SetupError as error:
            self._hand(self._resume_refused, str(error))
            return
        self._hand(self._resume, plan)

    def _resume_refused(self, text: str) -> None:
        self.notify(f"cannot resume: {text}", severity="error")

    def _resume(self, plan: steps.RunPlan) -> None:
        self._add_lines([f"{PREFIX} resuming from step {plan.start_step} in a new run"])
        self.app.switch_screen(
            MonitorScreen(
                plan, self.environ, self.workdir, self.skip_check, telemetry=self.telemetry
            )
        )

    def action_try_model(self) -> None:
        from vlm_tui.core.after.try_request import has_weights
        from vlm_tui.tui.try_screen import TryScreen

        if self.paths is None or not self.view.ended:
            self.notify("a run can be tried once it has ended", severity="warning")
            return
        if not has_weights(self.paths):
            self.notify("this run saved no weights to try", severity="warning")
            return
        self.app.push_screen(TryScreen(self.paths, self.environ))

    def action_follow(self) -> None:
        log = self.query_one(LogView)
        log.toggle_follow()
        self.notify("following the log" if log.follow else "log paused where you are")

    def action_filter(self) -> None:
        self.query_one(LogView).open_filter()

    def action_log_scale(self) -> None:
        self.query_one(LossChart).toggle_log_scale()

    def action_back(self) -> None:
        if self.live and self.paths is not None:
            self.notify(f"the run goes on in the background: {self.paths.root}")
        self.app.pop_screen()


def _run_title(paths: RunPaths) -> str:
    """The header's run name, and its trackers' names where it has some (their places are
    too long for the header: the log shows them)."""
    trackers = tracker_names(paths)
    return f"run: {paths.root.name}" + ("" if trackers == "-" else f"  trackers: {trackers}")


def _samples_per_step(config: Mapping[str, Any], world: int) -> tuple[int, int]:
    """Samples a step and processes: the progress line's figures for the run."""
    per_step = int(config.get("micro_batch_size") or 1)
    per_step *= int(config.get("gradient_accumulation_steps") or 1) * world
    return per_step, world


def _recorded_shape(paths: RunPaths | None) -> tuple[int, int]:
    """`_samples_per_step` of a run folder's records (1 and 1 before they exist)."""
    return _samples_per_step(_recorded_config(paths), _recorded_world(paths))


def _recorded_config(paths: RunPaths | None) -> dict[str, Any]:
    """The run's config.yml, for the batch sizes; empty when unreadable."""
    try:
        loaded = yaml.safe_load(paths.config.read_text(encoding="utf-8")) if paths else None
    except (OSError, yaml.YAMLError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _recorded_world(paths: RunPaths | None) -> int:
    command = read_command(paths) if paths else None
    return recorded_topology(command or {}).world_size or 1
