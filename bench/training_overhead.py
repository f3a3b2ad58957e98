"""Overhead on training: the demo through vlm-tui (TUI and `--no-ui`) against bare axolotl.

Three arms train the same demo with the same axolotl config and environment:

- *bare*: `python -m axolotl.cli.train config.yml`, the config and environment being exactly
  those a dry run of `vlm-tui --no-ui --demo` records (config.yml, command.json), with its
  output going to a file as under the supervisor;
- *no-ui*: `vlm-tui --no-ui --demo`;
- *tui*: `vlm-tui --demo` in a real terminal (a private tmux server, 140x45), launched with F5
  once the setup screen is ready, and quit with ctrl+q once the run has ended.

Rounds are interleaved (bare, no-ui, tui, bare, ...) after one untimed warm-up round, each arm
in a fresh work folder with its own output folder; the demo model cache and the datasets cache
are shared by all. Per round: the training's own `train_samples_per_second` and
`train_runtime` (its final summary dict), the training's wall time (status.json's start to end
for vlm-tui, the process's wall time for bare), the command's wall time, and the CPU time of
vlm-tui's own processes (front-end and supervisor, not the training), read with psutil every
0.2 s.

    python -m bench.training_overhead [--rounds 5] [--epochs 8] [--write-markdown BENCHMARKS.md]
    python -m bench.training_overhead --rounds 1 --max-steps 2 --no-warm-up   # quick
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil
import yaml

from bench.ui_flood import FILE_HEADER, machine_lines, replace_section, section_text
from harness.terminal import Tmux
from vlm_tui.core.launch.demo import demo_asset_paths, demo_cache_root
from vlm_tui.core.launch.secrets import REDACTED
from vlm_tui.core.launch.steps import build_demo_in_child
from vlm_tui.core.output.output_parser import Summary
from vlm_tui.core.output.run_state import parser_for_run
from vlm_tui.core.records.folder import RunPaths, read_json, runtime_s

SECTION_TITLE = "## Overhead on training"
NOTES_TITLE = "### What the figures show, and what remains"
MODULE = "bench.training_overhead"
ARMS = ("bare", "no-ui", "tui")
SHOWN = {
    "bare": "python -m axolotl.cli.train config.yml",
    "no-ui": "vlm-tui --no-ui --demo",
    "tui": "vlm-tui --demo (F5, then ctrl+q)",
}
DEFAULT_ROUNDS = 5
# The demo's 2 epochs train for about 2 s; 8 give a training phase long enough to time.
DEFAULT_EPOCHS = 8
# The target: vlm-tui keeps at least this share of bare axolotl's throughput.
TARGET_RATIO = 0.99
SAMPLE_EVERY_S = 0.2
READY_TIMEOUT_S = 90.0
RUN_TIMEOUT_S = 900.0
QUIT_TIMEOUT_S = 30.0
TERMINAL_STATES = ("finished", "failed", "stopped", "refused")
# The TUI in a real terminal, as the real-terminal tests drive it.
WIDTH, HEIGHT = 140, 45
TMUX_SESSION = "bench"
READY_TEXT = "ready: F5 launches this command"
ENDED_ON_SCREEN = re.compile(r"\b(finished|failed|stopped) \(exit -?\d+\)")
# What ctrl+q asks while the screen still takes the run for live.
QUIT_QUESTION = "Quit the UI and leave it running?"
# Variables that would make any arm a distributed run instead of the single-process demo.
DISTRIBUTED_VARIABLES = ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK")
DISTRIBUTED_PREFIXES = ("SLURM_", "PET_", "OMPI_", "PMI_", "SM_", "TORCHELASTIC_", "NODE_RANK")
REPO = Path(__file__).resolve().parent.parent
LOG_TAIL_CHARS = 2000


@dataclass
class RoundResult:
    """One arm's training once; CPU seconds are user + system of the named processes."""

    arm: str
    round: int
    load_1min: float  # the machine's load average when the arm started
    command_wall_s: float  # spawn to the run's recorded end (bare: to its exit)
    training_wall_s: float  # status.json started_at..ended_at (bare: spawn to exit)
    samples_per_s: float  # the training's own train_samples_per_second
    train_runtime_s: float  # the training's own train_runtime
    training_cpu_s: float  # the training process itself (last reading before it ended)
    # vlm-tui's own processes; None for bare.
    front_end_cpu_s: float | None = None
    supervisor_cpu_s: float | None = None
    vlm_cpu_during_training_s: float | None = None  # front-end + supervisor, start to end
    terminal_cpu_during_training_s: float | None = None  # tui: the tmux server drawing it

    @property
    def vlm_cpu_s(self) -> float | None:
        if self.front_end_cpu_s is None or self.supervisor_cpu_s is None:
            return None
        return self.front_end_cpu_s + self.supervisor_cpu_s

    @property
    def vlm_cpu_per_training_minute_s(self) -> float | None:
        if self.vlm_cpu_during_training_s is None or self.training_wall_s <= 0:
            return None
        return self.vlm_cpu_during_training_s / self.training_wall_s * 60.0


class BenchError(RuntimeError):
    """An arm did not train to the end; the message says what it showed."""


# ---- watching processes -----------------------------------------------------------------------


class CpuWatch:
    """The last CPU-time reading (user + system) of each watched process, by role.

    A process that has exited keeps its last reading: the sampling interval bounds what is
    missed at its end.
    """

    def __init__(self) -> None:
        self.processes: dict[str, psutil.Process] = {}
        self.seconds: dict[str, float] = {}

    def add(self, role: str, pid: int) -> None:
        if role in self.processes:
            return
        with contextlib.suppress(psutil.Error):
            self.processes[role] = psutil.Process(pid)

    def sample(self) -> None:
        for role, process in self.processes.items():
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                self.seconds[role] = times.user + times.system

    def total(self, *roles: str) -> float:
        return sum(self.seconds.get(role, 0.0) for role in roles)


def _epoch_s(stamp: object) -> float | None:
    try:
        return datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _only_run(workdir: Path) -> RunPaths | None:
    runs = sorted((workdir / "runs").glob("*/status.json"))
    return RunPaths(runs[-1].parent) if runs else None


@dataclass
class Followed:
    """What following one vlm-tui run to its end gave."""

    paths: RunPaths
    status: dict[str, Any]
    baseline_cpu_s: float  # front-end + supervisor when the run was first seen running
    terminal_baseline_cpu_s: float


def follow_run(
    workdir: Path,
    watch: CpuWatch,
    front_end_alive: Callable[[], bool],
    describe: Callable[[], str],
) -> Followed:
    """Sample CPU until the run under `workdir` records its end; the front-end must stay up."""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    paths: RunPaths | None = None
    baseline: float | None = None
    terminal_baseline = 0.0
    while time.monotonic() < deadline:
        paths = paths or _only_run(workdir)
        status = (read_json(paths.status) if paths is not None else None) or {}
        for role, key in (("supervisor", "supervisor_pid"), ("training", "child_pid")):
            if isinstance(status.get(key), int):
                watch.add(role, status[key])
        watch.sample()
        state = status.get("state")
        if baseline is None and state in ("running", *TERMINAL_STATES):
            baseline = watch.total("front-end", "supervisor")
            terminal_baseline = watch.total("terminal")
        if paths is not None and state in TERMINAL_STATES:
            return Followed(paths, status, baseline or 0.0, terminal_baseline)
        if not front_end_alive() and (paths is None or state in (None, "created", "dry_run")):
            raise BenchError(f"vlm-tui ended before its run started:\n{describe()}")
        time.sleep(SAMPLE_EVERY_S)
    raise BenchError(f"the run did not end within {RUN_TIMEOUT_S:.0f} s:\n{describe()}")


def summary_of(log_text: str, command: Mapping[str, Any]) -> dict[str, float | int]:
    """The training's final summary dict, parsed as the supervisor parses it."""
    parser = parser_for_run(dict(command))
    events = parser.feed(log_text.encode()) + parser.finish()
    found = [event.values for event in events if isinstance(event, Summary)]
    if not found:
        raise BenchError(f"no train_runtime summary in the output:\n{log_text[-LOG_TAIL_CHARS:]}")
    return found[-1]


def _recorded_summary(paths: RunPaths) -> dict[str, Any]:
    for line in reversed(paths.metrics.read_text(encoding="utf-8").splitlines()):
        record = json.loads(line)
        if record.get("kind") == "summary":
            return dict(record)
    raise BenchError(f"no summary record in {paths.metrics}")


def _tail(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")[-LOG_TAIL_CHARS:]
    except OSError:
        return f"<{path.name} unreadable>"


def _finished(followed: Followed, describe: Callable[[], str]) -> None:
    status = followed.status
    if status.get("state") != "finished" or status.get("exit_code") != 0:
        raise BenchError(
            f"the run ended {status.get('state')} (exit {status.get('exit_code')}): "
            f"{status.get('reason')}\n{_tail(followed.paths.log)}\n{describe()}"
        )


def _stop_supervisor(workdir: Path) -> None:
    """After a failure: force-stop a run left going, so the next arm has the cores."""
    paths = _only_run(workdir)
    status = (read_json(paths.status) if paths is not None else None) or {}
    pid = status.get("supervisor_pid")
    if isinstance(pid, int) and status.get("state") not in TERMINAL_STATES:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)


def _wait_gone(pid: int | None, timeout: float) -> None:
    if pid is None:
        return
    with contextlib.suppress(psutil.Error):
        psutil.Process(pid).wait(timeout=timeout)


def _vlm_result(
    arm: str,
    index: int,
    load: float,
    spawned_at: float,
    followed: Followed,
    watch: CpuWatch,
) -> RoundResult:
    status = followed.status
    summary = _recorded_summary(followed.paths)
    # The supervisor's own figure at its very end, where it records one; else the last reading.
    recorded = status.get("supervisor_cpu_s")
    supervisor_cpu = (
        float(recorded) if isinstance(recorded, int | float) else watch.total("supervisor")
    )
    during = watch.total("front-end") + supervisor_cpu - followed.baseline_cpu_s
    ended = _epoch_s(status.get("ended_at"))
    return RoundResult(
        arm=arm,
        round=index,
        load_1min=load,
        command_wall_s=(ended if ended is not None else time.time()) - spawned_at,
        training_wall_s=runtime_s(status) or 0.0,
        samples_per_s=float(summary["train_samples_per_second"]),
        train_runtime_s=float(summary["train_runtime"]),
        training_cpu_s=watch.total("training"),
        front_end_cpu_s=watch.total("front-end"),
        supervisor_cpu_s=supervisor_cpu,
        vlm_cpu_during_training_s=during,
        terminal_cpu_during_training_s=(
            watch.total("terminal") - followed.terminal_baseline_cpu_s
            if "terminal" in watch.processes
            else None
        ),
    )


# ---- the arms ----------------------------------------------------------------------------------


def base_environment(cache_dir: Path, scratch: Path) -> dict[str, str]:
    """This process's environment for every arm: single process, offline, shared caches."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in DISTRIBUTED_VARIABLES and not key.startswith(DISTRIBUTED_PREFIXES)
    }
    env.update(
        {
            "PYTHONPATH": str(REPO),
            "VLM_TUI_CACHE_DIR": str(cache_dir),
            "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
            "AXOLOTL_DO_NOT_TRACK": "1",
            # Shared by all arms, so the first (warm-up) round fills it for every one.
            "HF_DATASETS_CACHE": str(scratch / "datasets-cache"),
            "TERM": "xterm-256color",
        }
    )
    return env


@dataclass(frozen=True)
class Plan:
    """What vlm-tui would run for the demo: its config and recorded command."""

    config: dict[str, Any]
    command: dict[str, Any]
    config_path: str  # as named in the recorded argv


def vlm_argv(settings: Sequence[str], *, no_ui: bool) -> list[str]:
    return [sys.executable, "-m", "vlm_tui", *(["--no-ui"] if no_ui else []), "--demo", *settings]


def dry_run_plan(settings: Sequence[str], env: Mapping[str, str], scratch: Path) -> Plan:
    """`vlm-tui --no-ui --demo --dry-run SETTINGS`: the exact config and command it records."""
    workdir = scratch / "plan"
    workdir.mkdir()
    done = subprocess.run(
        [*vlm_argv(settings, no_ui=True), "--dry-run"],
        cwd=workdir,
        env=dict(env),
        capture_output=True,
        text=True,
        check=False,
    )
    paths = _only_run(workdir)
    if done.returncode != 0 or paths is None:
        raise BenchError(f"the dry run failed: {done.stdout[-500:]}{done.stderr[-500:]}")
    command = read_json(paths.command)
    if command is None:
        raise BenchError(f"the dry run recorded no {paths.command}")
    config = yaml.safe_load(paths.config.read_text(encoding="utf-8"))
    return Plan(config=config, command=command, config_path=str(paths.config))


def bare_environment(plan: Plan, env: Mapping[str, str]) -> dict[str, str]:
    """The recorded environment, with any redacted secret taken back from this process's."""
    recorded: dict[str, str] = dict(plan.command["env"])
    restored = {name: env.get(name, "") for name, value in recorded.items() if value == REDACTED}
    return {**recorded, **{name: value for name, value in restored.items() if value}}


def run_bare(plan: Plan, env: Mapping[str, str], workdir: Path, index: int) -> RoundResult:
    workdir.mkdir(parents=True)
    config = {**plan.config, "output_dir": str(workdir / "outputs" / "bare")}
    config_path = workdir / "config.yml"
    config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    argv = [str(config_path) if part == plan.config_path else part for part in plan.command["argv"]]
    log_path = workdir / "train.log"
    watch = CpuWatch()
    load = os.getloadavg()[0]
    with log_path.open("wb") as log:
        start = time.perf_counter()
        process = subprocess.Popen(
            argv,
            cwd=workdir,
            env=bare_environment(plan, env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # as the supervisor starts the training
        )
        watch.add("training", process.pid)
        try:
            while True:
                watch.sample()
                try:
                    process.wait(timeout=SAMPLE_EVERY_S)
                    break
                except subprocess.TimeoutExpired:
                    if time.perf_counter() - start > RUN_TIMEOUT_S:
                        raise BenchError(
                            f"bare training still running after {RUN_TIMEOUT_S:.0f} s"
                        ) from None
        finally:
            if process.poll() is None:
                with contextlib.suppress(OSError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        wall = time.perf_counter() - start
    if process.returncode != 0:
        raise BenchError(f"bare training exited {process.returncode}:\n{_tail(log_path)}")
    summary = summary_of(log_path.read_text(encoding="utf-8", errors="replace"), plan.command)
    return RoundResult(
        arm="bare",
        round=index,
        load_1min=load,
        command_wall_s=wall,
        training_wall_s=wall,
        samples_per_s=float(summary["train_samples_per_second"]),
        train_runtime_s=float(summary["train_runtime"]),
        training_cpu_s=watch.total("training"),
    )


def run_no_ui(
    settings: Sequence[str], env: Mapping[str, str], workdir: Path, index: int
) -> RoundResult:
    workdir.mkdir(parents=True)
    output = workdir / "vlm-tui.out"
    watch = CpuWatch()
    load = os.getloadavg()[0]
    with output.open("wb") as sink:
        spawned_at = time.time()
        front_end = subprocess.Popen(
            vlm_argv(settings, no_ui=True),
            cwd=workdir,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    watch.add("front-end", front_end.pid)
    try:
        followed = follow_run(
            workdir, watch, lambda: front_end.poll() is None, lambda: _tail(output)
        )
        _finished(followed, lambda: _tail(output))
        # The front-end prints its summary and exits; its last readings count.
        while front_end.poll() is None:
            watch.sample()
            with contextlib.suppress(subprocess.TimeoutExpired):
                front_end.wait(timeout=SAMPLE_EVERY_S)
        if front_end.returncode != 0:
            raise BenchError(f"vlm-tui --no-ui exited {front_end.returncode}:\n{_tail(output)}")
    finally:
        if front_end.poll() is None:
            front_end.kill()
            front_end.wait()
        _stop_supervisor(workdir)
    _wait_gone(followed.status.get("supervisor_pid"), QUIT_TIMEOUT_S)
    return _vlm_result("no-ui", index, load, spawned_at, followed, watch)


@contextlib.contextmanager
def tmux_server(env: Mapping[str, str]) -> Iterator[Tmux]:
    # A short folder of its own: socket paths are limited to about 100 bytes.
    folder = Path(tempfile.mkdtemp(prefix="vlm-tui-bench-"))
    tmux = Tmux(folder / "socket", env, TMUX_SESSION)
    try:
        yield tmux
    finally:
        tmux.kill()
        shutil.rmtree(folder, ignore_errors=True)


def _tui_process(pane_pid: int) -> psutil.Process | None:
    with contextlib.suppress(psutil.Error):
        for process in psutil.Process(pane_pid).children():
            if "vlm_tui" in " ".join(process.cmdline()):
                return process
    return None


def quit_tui(tmux: Tmux, app: psutil.Process) -> None:
    """ctrl+q once the screen shows the run's end; should it still ask (it saw the end late),
    the answer that quits."""
    deadline = time.monotonic() + QUIT_TIMEOUT_S
    while not ENDED_ON_SCREEN.search(tmux.capture()) and time.monotonic() < deadline:
        time.sleep(0.2)
    tmux.send("C-q")
    while app.is_running() and time.monotonic() < deadline:
        if QUIT_QUESTION in tmux.capture():
            tmux.send("y")
        with contextlib.suppress(psutil.TimeoutExpired):
            app.wait(timeout=0.5)
    if app.is_running():
        raise BenchError(f"vlm-tui did not quit on ctrl+q:\n{tmux.capture()}")


def run_tui(
    settings: Sequence[str], env: Mapping[str, str], workdir: Path, index: int
) -> RoundResult:
    workdir.mkdir(parents=True)
    watch = CpuWatch()
    load = os.getloadavg()[0]
    # The pane outlives the app, so a failure's last screen can still be read.
    pane = f"{shlex.join(vlm_argv(settings, no_ui=False))}; sleep 600"
    with tmux_server(env) as tmux:
        spawned_at = time.time()
        tmux(
            "new-session", "-d", "-s", TMUX_SESSION, "-x", str(WIDTH), "-y", str(HEIGHT),
            "-c", str(workdir), "-e", "TERM=xterm-256color", "sh", "-c", pane,
        )  # fmt: skip
        watch.add("terminal", tmux.pid("pid"))
        deadline = time.monotonic() + READY_TIMEOUT_S
        while READY_TEXT not in tmux.capture():
            if time.monotonic() > deadline:
                raise BenchError(f"the setup screen was not ready:\n{tmux.capture()}")
            time.sleep(0.1)
        app = _tui_process(tmux.pid("pane_pid"))
        if app is None:
            raise BenchError(f"no vlm-tui process in the pane:\n{tmux.capture()}")
        watch.add("front-end", app.pid)
        tmux.send("F5")
        try:
            followed = follow_run(workdir, watch, app.is_running, tmux.capture)
            _finished(followed, tmux.capture)
            watch.sample()
            quit_tui(tmux, app)
        finally:
            _stop_supervisor(workdir)
    _wait_gone(followed.status.get("supervisor_pid"), QUIT_TIMEOUT_S)
    return _vlm_result("tui", index, load, spawned_at, followed, watch)


# ---- measuring ---------------------------------------------------------------------------------


def settings_flags(epochs: int | None, max_steps: int | None) -> list[str]:
    flags: list[str] = []
    if epochs is not None:
        flags += ["--num_epochs", str(epochs)]
    if max_steps is not None:
        flags += ["--max_steps", str(max_steps)]
    return flags


def measure(
    rounds: int,
    *,
    arms: Sequence[str] = ARMS,
    settings: Sequence[str] = (),
    cache_dir: Path,
    warm_up: bool = True,
    scratch: Path | None = None,
    progress: Callable[[str], None] = lambda text: None,
) -> list[RoundResult]:
    """Interleaved rounds of every arm (after an untimed warm-up round); all rounds' results."""
    with contextlib.ExitStack() as stack:
        if scratch is None:
            scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="vlm-tui-oh-")))
        env = base_environment(cache_dir, scratch)
        progress("building the demo model (once) ...")
        build_demo_in_child(demo_asset_paths(demo_cache_root(env)), env)
        plan = dry_run_plan(settings, env, scratch)
        runners: dict[str, Callable[[Path, int], RoundResult]] = {
            "bare": lambda folder, index: run_bare(plan, env, folder, index),
            "no-ui": lambda folder, index: run_no_ui(settings, env, folder, index),
            "tui": lambda folder, index: run_tui(settings, env, folder, index),
        }
        results: list[RoundResult] = []
        for index in range(0 if warm_up else 1, rounds + 1):
            for arm in arms:
                progress(f"round {index or 'warm-up'}: {arm} ...")
                result = runners[arm](scratch / f"round-{index}" / arm, index)
                progress(
                    f"  {result.samples_per_s:.2f} samples/s, training {result.training_wall_s:.2f}"
                    f" s, load {result.load_1min:.2f}"
                )
                if index > 0:
                    results.append(result)
        return results


# ---- reporting ---------------------------------------------------------------------------------


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _spread(values: Sequence[float], digits: int) -> str:
    """median (min-max)"""
    if not values:
        return "n/a"
    return f"{_median(values):.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def _of(results: Sequence[RoundResult], arm: str) -> list[RoundResult]:
    return [result for result in results if result.arm == arm]


def _present(values: Sequence[float | None]) -> list[float]:
    return [value for value in values if value is not None]


def arms_table(results: Sequence[RoundResult], arms: Sequence[str]) -> str:
    rows = [
        "| arm | command | rounds | samples/s | train_runtime s | training wall s "
        "| command wall s | training CPU s | vlm-tui CPU s during training "
        "| vlm-tui CPU s per training minute | vlm-tui CPU s, whole command "
        "| terminal CPU s during training | load 1 min |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for arm in arms:
        mine = _of(results, arm)
        if not mine:
            continue
        cells = [
            arm,
            f"`{SHOWN[arm]}`",
            str(len(mine)),
            _spread([r.samples_per_s for r in mine], 2),
            _spread([r.train_runtime_s for r in mine], 2),
            _spread([r.training_wall_s for r in mine], 2),
            _spread([r.command_wall_s for r in mine], 2),
            _spread([r.training_cpu_s for r in mine], 1),
            _spread(_present([r.vlm_cpu_during_training_s for r in mine]), 2),
            _spread(_present([r.vlm_cpu_per_training_minute_s for r in mine]), 2),
            _spread(_present([r.vlm_cpu_s for r in mine]), 2),
            _spread(_present([r.terminal_cpu_during_training_s for r in mine]), 2),
            _spread([r.load_1min for r in mine], 2),
        ]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


@dataclass(frozen=True)
class Ratio:
    """An arm's figure over bare's: of the medians, and the range of the per-round ratios."""

    of_medians: float
    per_round: tuple[float, ...]


def ratio(
    results: Sequence[RoundResult], arm: str, figure: Callable[[RoundResult], float]
) -> Ratio:
    bare = {r.round: figure(r) for r in _of(results, "bare")}
    mine = {r.round: figure(r) for r in _of(results, arm)}
    per_round = tuple(mine[i] / bare[i] for i in sorted(mine) if i in bare and bare[i] > 0)
    medians = _median(list(bare.values()))
    return Ratio(_median(list(mine.values())) / medians if medians > 0 else float("nan"), per_round)


def _ratio_cell(value: Ratio) -> str:
    if not value.per_round:
        return f"{value.of_medians:.3f}"
    return f"{value.of_medians:.3f} ({min(value.per_round):.3f}-{max(value.per_round):.3f})"


FIGURES: tuple[tuple[str, Callable[[RoundResult], float]], ...] = (
    ("samples/s", lambda r: r.samples_per_s),
    ("train_runtime", lambda r: r.train_runtime_s),
    ("training wall", lambda r: r.training_wall_s),
    ("command wall", lambda r: r.command_wall_s),
)


def ratios_table(results: Sequence[RoundResult], arms: Sequence[str]) -> str:
    rows = [
        "| arm / bare | " + " | ".join(name for name, _ in FIGURES) + " |",
        "|---|" + "---:|" * len(FIGURES),
    ]
    for arm in arms:
        if arm == "bare" or not _of(results, arm):
            continue
        cells = [_ratio_cell(ratio(results, arm, figure)) for _, figure in FIGURES]
        rows.append(f"| {arm} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def verdict(results: Sequence[RoundResult], arms: Sequence[str]) -> str:
    if not _of(results, "bare"):
        return ""
    parts = []
    for arm in arms:
        if arm == "bare" or not _of(results, arm):
            continue
        throughput = ratio(results, arm, lambda r: r.samples_per_s).of_medians
        met = "met" if throughput >= TARGET_RATIO else "missed"
        parts.append(
            f"Target (at least {TARGET_RATIO:g} of bare throughput), {arm}: **{met}** "
            f"({throughput:.3f} of bare samples/s)."
        )
    return " ".join(parts)


METHOD = (
    "Method: three arms train the demo with the same axolotl config and environment. *bare* "
    "runs `python -m axolotl.cli.train` on the config.yml and with the environment that a dry "
    "run of `vlm-tui --no-ui --demo` records (command.json: `OMP_NUM_THREADS=1`, "
    "`PYTHONUNBUFFERED=1`, offline), its output going to a file as under the supervisor; "
    "*no-ui* runs `vlm-tui --no-ui --demo`; *tui* runs `vlm-tui --demo` in a real terminal "
    f"(a private tmux server, {WIDTH}x{HEIGHT}), presses F5 once the setup screen is ready "
    "and ctrl+q once the run has ended. Rounds are interleaved (bare, no-ui, tui, bare, ...) "
    "after one untimed warm-up round; each arm trains in a fresh work and output folder, the "
    "demo model and the datasets cache shared by all. samples/s and train_runtime are the "
    "training's own figures (its final summary dict: metrics.jsonl for vlm-tui, its output "
    "parsed by the same parser for bare). Training wall is status.json's start to end for "
    "vlm-tui (the supervisor starts the training, then records its end once nothing of the "
    "run is left) and spawn to exit for bare; command wall is spawn to that recorded end "
    "(for the TUI this includes drawing the setup screen and the press of F5). CPU seconds "
    "are user + system from psutil, read every 0.2 s: the training process's own, and "
    "vlm-tui's own processes (the front-end and the supervisor, not the training or the "
    "checks it runs in children before launch; the supervisor's last figure is the one it "
    "records in status.json as it ends), during the training (from the first reading that "
    "shows the run running) and over the whole command; per training minute is the "
    "former over the training wall. Terminal CPU is the tmux server drawing the TUI. Each "
    "cell is the median of the rounds with min-max beside it; ratios are arm over bare, of "
    "the medians, with the range of the per-round ratios (rounds paired side by side)."
)


def command_line(
    rounds: int, epochs: int | None, max_steps: int | None, arms: Sequence[str]
) -> str:
    parts = ["python -m", MODULE, "--rounds", str(rounds)]
    if epochs is not None:
        parts += ["--epochs", str(epochs)]
    if max_steps is not None:
        parts += ["--max-steps", str(max_steps)]
    if tuple(arms) != ARMS:
        parts += ["--arms", ",".join(arms)]
    return " ".join(parts)


def load_line(results: Sequence[RoundResult]) -> str:
    loads = [r.load_1min for r in results]
    cores = os.cpu_count() or 0
    return (
        f"- load average (1 min) when each arm started: median {_median(loads):.2f}, "
        f"{min(loads):.2f}-{max(loads):.2f}, on {cores} cores (the training takes one)"
    )


def section(
    results: Sequence[RoundResult],
    command: str,
    arms: Sequence[str],
    notes: str = "",
) -> str:
    parts = [
        SECTION_TITLE,
        "",
        METHOD,
        "",
        f"`{command}`. Machine:",
        "",
        *machine_lines(),
        *([load_line(results)] if results else []),
        "",
        arms_table(results, arms),
        "",
        "Ratios, arm over bare (of the medians; min-max of the per-round ratios):",
        "",
        ratios_table(results, arms),
    ]
    text = verdict(results, arms)
    if text:
        parts += ["", text]
    if notes:
        parts += ["", notes.strip("\n")]
    return "\n".join(parts) + "\n"


def kept_notes(document: str) -> str:
    """The hand-written notes subsection of the section, kept when the figures are rewritten."""
    lines = section_text(document, SECTION_TITLE).splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == NOTES_TITLE), None)
    if start is None:
        return ""
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("### ")), len(lines))
    return "\n".join(lines[start:end]).strip("\n") + "\n"


def write_markdown(
    path: Path, results: Sequence[RoundResult], command: str, arms: Sequence[str]
) -> None:
    document = path.read_text(encoding="utf-8") if path.exists() else FILE_HEADER
    text = section(results, command, arms, kept_notes(document))
    path.write_text(replace_section(document, text, SECTION_TITLE), encoding="utf-8")


def _arms(text: str) -> list[str]:
    arms = [part.strip() for part in text.split(",") if part.strip()]
    unknown = set(arms) - set(ARMS)
    if not arms or unknown:
        raise argparse.ArgumentTypeError(f"a list of {', '.join(ARMS)}")
    return [arm for arm in ARMS if arm in arms]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=f"python -m {MODULE}",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS)
    parser.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS, help="demo epochs")
    parser.add_argument("--max-steps", type=int, help="stop each training after this many steps")
    parser.add_argument("--arms", type=_arms, default=list(ARMS), help="bare,no-ui,tui")
    parser.add_argument("--no-warm-up", action="store_true", help="skip the untimed round")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        help="VLM_TUI_CACHE_DIR for the demo model (default: the user's vlm-tui cache)",
    )
    parser.add_argument("--keep", type=Path, metavar="DIR", help="keep every run folder here")
    parser.add_argument("--results-json", type=Path, metavar="FILE", help="every round's figures")
    parser.add_argument("--write-markdown", type=Path, metavar="FILE")
    args = parser.parse_args(argv)
    arms: list[str] = args.arms
    if "tui" in arms and shutil.which("tmux") is None:
        print("tmux is not installed: the tui arm is left out", file=sys.stderr)
        arms = [arm for arm in arms if arm != "tui"]
    cache_dir = args.cache_dir or demo_cache_root(os.environ).parent
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=False)

    def progress(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    rounds = max(args.rounds, 1)
    results = measure(
        rounds,
        arms=arms,
        settings=settings_flags(args.epochs, args.max_steps),
        cache_dir=cache_dir.resolve(),
        warm_up=not args.no_warm_up,
        scratch=args.keep.resolve() if args.keep is not None else None,
        progress=progress,
    )
    command = command_line(rounds, args.epochs, args.max_steps, arms)
    print(section(results, command, arms))
    if args.results_json is not None:
        args.results_json.write_text(
            json.dumps([asdict(result) for result in results], indent=1), encoding="utf-8"
        )
    if args.write_markdown is not None:
        write_markdown(args.write_markdown, results, command, arms)
    return 0


if __name__ == "__main__":
    sys.exit(main())
