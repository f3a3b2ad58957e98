"""The monitor under a flood: a producer writes train.log at a fixed rate while the UI follows it.

A synthetic producer prints a realistic mix of training output (axolotl logger lines, torch
and Python warnings, metric dicts, tqdm redraws with carriage returns, now and then a short
traceback) at a target rate, paced in 10 ms slices. It runs as the "training" of a hand-made
run folder under the real supervisor, which sends its output into train.log and parses it into
metrics.jsonl and status.json, as in a real run. In this process a headless Textual app shows
the real `MonitorScreen` following that folder, while a probe on the same event loop measures:

- lines received by the log pane per second, and lines it wrote to the `Log` per second;
- event-loop stalls: an asyncio task sleeps 5 ms at a time and records how late it wakes;
- peak RSS (psutil every 100 ms, and the kernel's ru_maxrss);
- lag: how long after the producer finished the monitor saw the run's recorded end (the
  supervisor's parsing included).

By default each rate runs in a fresh child process, so RSS figures of one rate do not include
what an earlier one left behind.

    python -m bench.ui_flood [--rates 10000,50000,200000] [--seconds 10]
                             [--write-markdown BENCHMARKS.md] [--breakdown]
    python -m bench.ui_flood --rates max --lines 10000000      # RSS after 10M lines
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import functools
import json
import math
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import psutil
import textual
from textual.app import App
from textual.screen import Screen
from textual.widgets import Log

from vlm_tui.core.host.telemetry import Telemetry
from vlm_tui.core.records.folder import RunPaths, read_json, write_json_atomic
from vlm_tui.core.runs.follow import RecordFollower
from vlm_tui.theme_files import DEFAULT_THEME
from vlm_tui.tui.app import STYLESHEET, freeze_startup_objects
from vlm_tui.tui.monitor_screen import MonitorScreen
from vlm_tui.tui.themes import register_themes
from vlm_tui.tui.widgets.log_view import LogView
from vlm_tui.tui.widgets.loss_chart import LossChart

DEFAULT_RATES = (10_000, 50_000, 200_000)
DEFAULT_PIPELINES = "stand-in,real"
DEFAULT_SECONDS = 10.0
SIZE = (140, 45)
SECTION_TITLE = "## UI under a flood"
FILE_HEADER = (
    "# Benchmarks\n\n"
    "Measured figures for vlm-tui. Every figure here comes from a script in `bench/`, run on "
    "the machine described in its section; rerun the command given there to refresh it. "
    "Figures from different machines are not comparable.\n"
)
# The target from the issue: no stall over 50 ms at 50k lines/s.
TARGET_RATE = 50_000
TARGET_STALL_MS = 50.0
# The monitor polls an idle log every 0.1 s; a lag up to this still counts as keeping up.
KEPT_UP_LAG_S = 0.5
# The later issue's target for long runs: RSS under 200 MB after 10M lines.
LONG_RUN_LINES = 10_000_000
LONG_RUN_RSS_MB = 200.0

SLICE_S = 0.01  # the producer writes every 10 ms
UNPACED_SLICE_LINES = 10_000  # about 1.2 MB a write when unpaced
TICK_S = 0.005  # the stall probe's sleep
RSS_EVERY_S = 0.1
FLOOR_SECONDS = 5.0
# Physical lines per training step: one metric dict and the rest logger lines. Each dict is a
# point on the loss chart, so this sets how fast the chart grows during a flood.
LINES_PER_STEP = 20
TRACEBACK_EVERY_STEPS = 100
MB = 1024 * 1024
REPO = Path(__file__).resolve().parent.parent
MODULE = "bench.ui_flood"


# ---- the producer (runs in its own process) ---------------------------------------------------

_BLOCKS = " ▏▎▍▌▋▊▉█"
_CLEAR = "\r" + " " * 80 + "\r"  # what tqdm.write does before printing above the bar
_TRACEBACK = (
    "Traceback (most recent call last):",
    '  File "site-packages/axolotl/utils/data/sft.py", line 412, in load_image',
    "    image = Image.open(path).convert('RGB')",
    '  File "site-packages/PIL/Image.py", line 3431, in open',
    '    fp = builtins.open(filename, "rb")',
    "FileNotFoundError: [Errno 2] No such file or directory: 'images/{step:06d}.jpg'",
)


def _stamp(elapsed: float) -> str:
    """A logger timestamp on a fixed synthetic day, advancing with the producer's clock."""
    whole = int(elapsed)
    seconds = 52 + whole
    minutes = 20 + seconds // 60
    return (
        f"2026-11-24 {17 + minutes // 60:02d}:{minutes % 60:02d}:{seconds % 60:02d},"
        f"{int((elapsed - whole) * 1000):03d}"
    )


def _clock(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 60:02d}:{whole % 60:02d}"


def _bar(step: int, total: int, elapsed: float) -> str:
    """A tqdm bar as the trainer draws it: ' 45%|████▌     | 45/100 [00:01<00:02, 17.69it/s]'."""
    fraction = step / total
    eighths = int(fraction * 80)
    cells = "█" * (eighths // 8) + (_BLOCKS[eighths % 8] if eighths < 80 else "")
    rate = step / elapsed if elapsed > 0 else 0.0
    remaining = (total - step) / rate if rate else 0.0
    return (
        f"{int(fraction * 100):3d}%|{cells:<10}| {step}/{total} "
        f"[{_clock(elapsed)}<{_clock(remaining)}, {rate:.2f}it/s]"
    )


def _loss_and_rate(step: int, total: int) -> tuple[float, float, float]:
    noise = (step * 2654435761 % 1000) / 10_000
    return 2.0 * math.exp(-3.0 * step / total) + 0.3 + noise, 5e-3 * (1.0 - step / total), noise


def _metrics(step: int, total: int) -> str:
    """A metric dict as transformers 5 prints it (values as quoted strings)."""
    loss, rate, noise = _loss_and_rate(step, total)
    return (
        f"{{'loss': '{loss:.4f}', 'grad_norm': '{0.9 + noise:.4f}', "
        f"'learning_rate': '{rate:.4g}', 'epoch': '{3.0 * step / total:.4g}'}}"
    )


def _logger_lines(step: int, count: int, stamp: str) -> list[str]:
    """`count` log lines of the kinds that flood a distributed run's output."""
    lines: list[str] = []
    for index in range(count):
        rank = index % 8
        kind = index % 6
        if kind == 0:
            line = (
                f"[{stamp}] [INFO] [axolotl.train] [RANK:{rank}] step {step}: packed "
                f"{index + 12} samples into 4 sequences of 2048 tokens"
            )
        elif kind == 1:
            line = (
                f"[{stamp}] [WARNING] [axolotl.utils.data.sft] [RANK:{rank}] sample "
                f"{step * 31 + index} truncated from {2048 + index * 17} to 2048 tokens"
            )
        elif kind == 2:
            line = (
                f"[rank{rank}]:[W1124 17:20:52.118000 {4200 + rank} torch/distributed/c10d/"
                f"ProcessGroupNCCL.cpp:4561] Warning: barrier took {index * 3 + 1} ms"
            )
        elif kind == 3:
            line = (
                "site-packages/transformers/image_processing_utils.py:41: UserWarning: image "
                f"{step}-{index} is larger than max_pixels; resizing to 1024x1024"
            )
        elif kind == 4:
            line = f"INFO:accelerate.accelerator:gradient accumulation step {index % 4} of 4"
        else:
            line = (
                f"[{stamp}] [DEBUG] [axolotl.monkeypatch.attention] [RANK:{rank}] varlen "
                f"flash attention, max_seqlen={512 + index}, batch={index % 4 + 1}"
            )
        lines.append(line)
    return lines


def _step_lines(step: int, total: int, elapsed: float, lines_per_step: int) -> list[str]:
    """What one training step prints: `lines_per_step` physical lines and two bar redraws."""
    bar = "\r" + _bar(step, total, elapsed)
    logs = _logger_lines(step, lines_per_step - 1, _stamp(elapsed))
    if step % TRACEBACK_EVERY_STEPS == 0:
        # A data-loading error logged with its traceback, in place of a few logger lines.
        logs[-len(_TRACEBACK) :] = [line.format(step=step) for line in _TRACEBACK]
    # The bar, cleared for the metric dict (tqdm.write), redrawn, then logger lines printed
    # straight after it, as plain logging does (no newline until something prints one).
    return [
        f"{bar}{_CLEAR}{_metrics(step, total)}\n",
        f"{bar}{logs[0]}\n",
        *(f"{line}\n" for line in logs[1:]),
    ]


def _final_lines(total: int, elapsed: float) -> list[str]:
    """The bar's last redraw ends its line; then the trainer says it is done."""
    return [
        f"\r{_bar(total, total, elapsed)}\n",
        f"[{_stamp(elapsed)}] [INFO] [axolotl.train] Training completed! Saving trained model "
        "to ./outputs/out.\n",
    ]


@dataclass
class ProducerReport:
    lines: int  # physical lines, each ended by a newline
    redraws: int  # tqdm bar redraws (carriage-return segments)
    bytes: int
    started: float  # time.monotonic(), comparable across processes on one machine
    ended: float  # after the last byte and status.json saying "finished"


class StandIn:
    """Records what a supervisor would, without parsing: the UI alone, not the pipeline.

    Writes a metrics.jsonl record per step and status.json progress once a second, from the
    numbers the producer prints, and the run's end.
    """

    def __init__(self, paths: RunPaths) -> None:
        self.paths = paths
        self.metrics = paths.metrics.open("a", encoding="utf-8")
        self.next_status = 0.0
        self.step = 0

    def steps_done(self, step: int, total: int, elapsed: float) -> None:
        for done in range(self.step + 1, min(step, total) + 1):
            loss, rate, _ = _loss_and_rate(done, total)
            record = {"kind": "train", "step": done, "loss": loss, "learning_rate": rate}
            self.metrics.write(json.dumps(record) + "\n")
        self.step = max(self.step, min(step, total))
        self.metrics.flush()
        if elapsed >= self.next_status:
            self._status(total, elapsed, state="running")
            self.next_status = elapsed + 1.0

    def _status(self, total: int, elapsed: float, **extra: Any) -> None:
        rate = self.step / elapsed if elapsed > 0 else None
        progress = {"step": self.step, "total": total, "steps_per_second": rate}
        write_json_atomic(self.paths.status, {"progress": progress, **extra})

    def ended(self, total: int, elapsed: float) -> None:
        self.metrics.close()
        self._status(total, elapsed, state="finished", exit_code=0)


def produce(
    out: BinaryIO,
    rate: int,
    seconds: float,
    lines: int | None,
    lines_per_step: int = LINES_PER_STEP,
    stand_in: StandIn | None = None,
) -> ProducerReport:
    """Print training output at `rate` lines/s (0: as fast as possible) to `out`, then end.

    The line count is rounded down to whole steps, plus the two lines that end the run.
    """
    total_steps = max((lines if lines is not None else int(rate * seconds)) // lines_per_step, 1)
    total_lines = total_steps * lines_per_step + 2
    written = redraws = size = step = 0
    pending: list[str] = []  # lines of the current step not written yet
    started = next_slice = time.monotonic()
    while written < total_lines:
        elapsed = time.monotonic() - started
        # Paced: the lines due by now. Unpaced: still in slices, so the log grows steadily.
        due = int(rate * elapsed) if rate > 0 else written + UNPACED_SLICE_LINES
        due = min(due, total_lines)
        parts: list[str] = []
        while written < due:
            if not pending:
                step += 1
                if step <= total_steps:
                    pending = _step_lines(step, total_steps, elapsed, lines_per_step)
                    redraws += 2
                else:
                    pending = _final_lines(total_steps, elapsed)
                    redraws += 1
            take = min(len(pending), due - written)
            parts += pending[:take]
            del pending[:take]
            written += take
        if parts:
            data = "".join(parts).encode()
            out.write(data)
            out.flush()
            size += len(data)
            if stand_in is not None:
                stand_in.steps_done(step - 1 if pending else step, total_steps, elapsed)
        if rate > 0 and written < total_lines:
            next_slice += SLICE_S
            pause = next_slice - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            else:
                next_slice = time.monotonic()  # behind: catch up, do not burst forever
    if stand_in is not None:
        stand_in.ended(total_steps, time.monotonic() - started)
    return ProducerReport(written, redraws, size, started, time.monotonic())


# ---- the monitor side (this process) ----------------------------------------------------------


class _NoDriver:
    """An NVML stand-in reporting no driver: the GPU panel stays quiet on every machine."""

    class Missing(Exception):
        value = 12  # NVML_ERROR_LIBRARY_NOT_FOUND

    def nvmlInit(self) -> None:
        raise self.Missing("NVML is off for the benchmark")


class FloodApp(App[None]):
    """The app's themes and stylesheet around one `MonitorScreen` following `paths`."""

    CSS_PATH = str(STYLESHEET)

    def __init__(self, paths: RunPaths) -> None:
        super().__init__()
        register_themes(self)
        self.theme = DEFAULT_THEME
        self.paths = paths
        self.monitor = MonitorScreen(
            None,
            os.environ,
            paths.root,
            run_folder=paths,
            telemetry=Telemetry(nvml=_NoDriver()),
        )

    def on_mount(self) -> None:
        self.push_screen(self.monitor)
        self.call_after_refresh(freeze_startup_objects)


def make_run_folder(root: Path, flood: Flood, report_file: Path) -> RunPaths:
    """A run folder as `record_run` leaves it, whose "training" is the producer."""
    root.mkdir(parents=True, exist_ok=True)
    paths = RunPaths(root)
    producer = [sys.executable, "-m", MODULE, "--produce", str(report_file), *flood.flags()]
    write_json_atomic(
        paths.command,
        {
            "argv": producer,
            "cwd": str(REPO),
            "logging_steps": 1,
            "start_step": 0,
            "topology": {"world_size": 8},
        },
    )
    paths.config.write_text("micro_batch_size: 2\ngradient_accumulation_steps: 4\n")
    return paths


def count_lines(path: Path) -> int:
    with path.open("rb") as stream:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: stream.read(MB), b""))


def start_supervisor(paths: RunPaths) -> subprocess.Popen[bytes]:
    """The real supervisor, as a launch starts it: it runs the producer and parses its output."""
    return subprocess.Popen(
        [sys.executable, "-m", "vlm_tui.core.supervise.supervisor", str(paths.root)],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=paths.supervisor_log.open("ab"),
        start_new_session=True,
    )


@dataclass(frozen=True)
class Flood:
    """One workload: `rate` lines/s (0: unpaced) for `seconds`, or until `lines` are written."""

    rate: int
    seconds: float = DEFAULT_SECONDS
    lines: int | None = None
    lines_per_step: int = LINES_PER_STEP
    # True: the real supervisor runs the producer and parses its output (the whole pipeline).
    # False: the producer records its own numbers (StandIn): the monitor alone.
    supervisor: bool = True

    def __post_init__(self) -> None:
        if self.rate <= 0 and self.lines is None:
            raise ValueError("an unpaced flood needs a line count")
        if self.lines_per_step < 2:
            raise ValueError("a step prints a metric dict and at least one other line")

    def flags(self) -> list[str]:
        """This workload as command-line flags of this module."""
        flags = ["--rates", str(self.rate) if self.rate > 0 else "max"]
        flags += ["--seconds", f"{self.seconds:g}", "--lines-per-step", str(self.lines_per_step)]
        flags += ["--pipelines", "real" if self.supervisor else "stand-in"]
        return flags + (["--lines", str(self.lines)] if self.lines is not None else [])

    def deadline_s(self) -> float:
        """How long to wait for the monitor before reporting that it did not catch up."""
        # An unpaced run's length is unknown: assume the monitor follows 50k lines/s.
        per_second = self.rate if self.rate > 0 else 50_000
        expected = self.seconds if self.lines is None else self.lines / per_second
        return 6 * expected + 30


@dataclass
class CallTimes:
    """Durations of one instrumented function, summarised; CPU is the calling thread's own."""

    calls: int
    total_s: float
    cpu_s: float
    max_ms: float
    p99_ms: float


@dataclass
class FloodResult:
    flood: Flood
    offered_lines: int
    produce_s: float
    received: int
    written: int
    not_shown: int
    follow_s: float  # producer start until the monitor reached the end (or gave up)
    lag_s: float | None  # None: the monitor had not reached the end by the deadline
    longest_stall_ms: float
    p99_stall_ms: float
    ticks: int
    baseline_rss_mb: float
    peak_rss_mb: float
    final_rss_mb: float
    ru_maxrss_mb: float
    loss_points: int
    cpu_percent: float  # this process's CPU use (all threads) while the flood was followed
    load_average: float  # the machine's 1-minute load average when the flood started
    breakdown: dict[str, CallTimes] = field(default_factory=dict)

    @property
    def rate(self) -> int:
        return self.flood.rate

    @property
    def offered_per_s(self) -> float:
        return self.offered_lines / self.produce_s if self.produce_s > 0 else 0.0

    @property
    def received_per_s(self) -> float:
        return self.received / self.follow_s if self.follow_s > 0 else 0.0

    @property
    def written_per_s(self) -> float:
        return self.written / self.follow_s if self.follow_s > 0 else 0.0

    @property
    def kept_up(self) -> bool:
        return (
            self.lag_s is not None
            and self.lag_s <= KEPT_UP_LAG_S
            and self.received == self.offered_lines
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FloodResult:
        flood = Flood(**data.pop("flood"))
        breakdown = {name: CallTimes(**times) for name, times in data.pop("breakdown").items()}
        return cls(flood=flood, breakdown=breakdown, **data)


def percentile(values: Sequence[float], fraction: float) -> float:
    """The value below which `fraction` of `values` lie (nearest rank); 0 when empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


class Probe:
    """Runs on the app's event loop: wake-up lateness, RSS, and when the monitor caught up."""

    def __init__(self, screen: MonitorScreen | None) -> None:
        self.screen = screen
        self.ticks: list[tuple[float, float]] = []  # (when, lateness in seconds)
        self.rss_peak = 0
        self.ended_at: float | None = None
        self._process = psutil.Process()
        self._running = True

    def rss(self) -> int:
        value = int(self._process.memory_info().rss)
        self.rss_peak = max(self.rss_peak, value)
        return value

    def stop(self) -> None:
        self._running = False

    async def run(self) -> None:
        last = time.monotonic()
        next_rss = last
        while self._running:
            await asyncio.sleep(TICK_S)
            now = time.monotonic()
            self.ticks.append((now, max(now - last - TICK_S, 0.0)))
            last = now
            if self.ended_at is None and self.screen is not None and self.screen.view.ended:
                self.ended_at = now
            if now >= next_rss:
                self.rss()
                next_rss = now + RSS_EVERY_S


def noise_floor(seconds: float) -> tuple[float, float]:
    """Longest and p99 lateness (ms) of the same probe on an empty event loop: the machine's
    own scheduling noise, which no change to the app can remove."""

    async def probe_alone() -> list[float]:
        probe = Probe(None)
        task = asyncio.create_task(probe.run())
        await asyncio.sleep(seconds)
        probe.stop()
        await task
        return [late for _, late in probe.ticks]

    stalls = asyncio.run(probe_alone())
    return max(stalls, default=0.0) * 1000, percentile(stalls, 0.99) * 1000


# What --breakdown times: the UI-side callbacks, Textual's paint, and the worker's parsing.
_TIMED: tuple[tuple[type[Any], str], ...] = (
    (MonitorScreen, "_absorb"),
    (LogView, "add_lines"),
    (LogView, "flush_now"),
    (Log, "write_lines"),
    (LossChart, "set_data"),
    (LossChart, "extend"),
    (LossChart, "render"),
    (Screen, "_compositor_refresh"),
    (Screen, "_refresh_layout"),
    (RecordFollower, "poll"),
)


@contextlib.contextmanager
def timed_calls(timings: dict[str, list[tuple[float, float, float]]]) -> Iterator[None]:
    """Wrap each of `_TIMED` to record (end, wall, thread CPU) of each call; undone on exit.

    Wall time includes waiting for the GIL while the worker thread parses; the thread's CPU
    time does not, so the two together tell contention from work.
    """
    originals: list[tuple[type[Any], str, Any]] = []
    for owner, name in _TIMED:
        original = owner.__dict__.get(name)
        if original is None:
            continue  # a private Textual name that moved; time the rest
        bucket = timings.setdefault(f"{owner.__name__}.{name}", [])

        def wrapper(
            *args: Any,
            _original: Any = original,
            _bucket: list[tuple[float, float, float]] = bucket,
            **kwargs: Any,
        ) -> Any:
            start, cpu = time.monotonic(), time.thread_time()
            try:
                return _original(*args, **kwargs)
            finally:
                end = time.monotonic()
                _bucket.append((end, end - start, time.thread_time() - cpu))

        functools.update_wrapper(wrapper, original)
        originals.append((owner, name, original))
        setattr(owner, name, wrapper)
    try:
        yield
    finally:
        for owner, name, original in originals:
            setattr(owner, name, original)


def _summarise(
    timings: dict[str, list[tuple[float, float, float]]], start: float, end: float
) -> dict[str, CallTimes]:
    """The calls that ended between `start` and `end`, per function."""
    summary: dict[str, CallTimes] = {}
    for name, calls in timings.items():
        times = [(wall, cpu) for ended, wall, cpu in calls if start <= ended <= end]
        walls = [wall for wall, _ in times]
        summary[name] = CallTimes(
            calls=len(times),
            total_s=sum(walls),
            cpu_s=sum(cpu for _, cpu in times),
            max_ms=max(walls, default=0.0) * 1000,
            p99_ms=percentile(walls, 0.99) * 1000,
        )
    return summary


async def measure_async(
    flood: Flood, *, breakdown: bool = False, scratch: Path | None = None
) -> FloodResult:
    """One workload: a fresh run folder, the app following it, the producer writing it."""
    owned = scratch is None
    base = Path(tempfile.mkdtemp(prefix="vlm-tui-flood-")) if scratch is None else scratch
    timings: dict[str, list[tuple[float, float, float]]] = {}
    try:
        report_file = base / "producer.json"
        paths = make_run_folder(base / "run", flood, report_file)
        if not flood.supervisor:
            paths.log.write_bytes(b"")
        app = FloodApp(paths)
        with timed_calls(timings) if breakdown else contextlib.nullcontext():
            async with app.run_test(size=SIZE) as pilot:
                await pilot.pause(0.5)  # mounted, laid out, first paint done
                screen = app.monitor
                log_view = screen.query_one(LogView)
                probe = Probe(screen)
                task = asyncio.create_task(probe.run())
                await asyncio.sleep(0.3)
                baseline = probe.rss()
                load = os.getloadavg()[0]
                cpu_before = sum(psutil.Process().cpu_times()[:2])
                if flood.supervisor:
                    supervisor = start_supervisor(paths)
                else:
                    supervisor = subprocess.Popen(
                        [
                            *(sys.executable, "-m", MODULE, "--produce", str(report_file)),
                            *("--record-to", str(paths.root), *flood.flags()),
                        ],
                        cwd=REPO,
                        stdin=subprocess.DEVNULL,
                    )
                launched = time.monotonic()
                deadline = launched + flood.deadline_s()
                while probe.ended_at is None and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                gave_up_at = time.monotonic()
                cpu_used = sum(psutil.Process().cpu_times()[:2]) - cpu_before
                cpu_percent = 100 * cpu_used / max(gave_up_at - launched, 1e-9)
                await asyncio.sleep(0.3)  # the log pane's last flush
                log_view.flush_now()
                probe.stop()
                await task
                final = probe.rss()
                if supervisor.poll() is None:
                    supervisor.send_signal(signal.SIGTERM)
                await asyncio.to_thread(supervisor.wait)
                received, written = log_view.lines_received, log_view.lines_written
                not_shown = log_view.lines_not_shown
                loss_points = screen.view.loss_points
        status = read_json(paths.status) or {}
        if status.get("exit_code") != 0 or not report_file.exists():
            problem = paths.supervisor_log.read_text(errors="replace").strip()
            raise RuntimeError(f"the producer failed: {status.get('reason')} {problem}")
        report = ProducerReport(**json.loads(report_file.read_text(encoding="utf-8")))
        # The supervisor's own lines come first (the guide's rank lines of a distributed run).
        logged_lines = count_lines(paths.log)
    finally:
        if owned:
            shutil.rmtree(base, ignore_errors=True)
    end = probe.ended_at if probe.ended_at is not None else gave_up_at
    stalls = [late for when, late in probe.ticks if report.started <= when <= end]
    return FloodResult(
        flood=flood,
        offered_lines=logged_lines,
        produce_s=report.ended - report.started,
        received=received,
        written=written,
        not_shown=not_shown,
        follow_s=end - report.started,
        lag_s=None if probe.ended_at is None else max(probe.ended_at - report.ended, 0.0),
        longest_stall_ms=max(stalls, default=0.0) * 1000,
        p99_stall_ms=percentile(stalls, 0.99) * 1000,
        ticks=len(stalls),
        baseline_rss_mb=baseline / MB,
        peak_rss_mb=max(probe.rss_peak, final) / MB,
        final_rss_mb=final / MB,
        # Linux reports ru_maxrss in KiB.
        ru_maxrss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        loss_points=loss_points,
        cpu_percent=cpu_percent,
        load_average=load,
        breakdown=_summarise(timings, report.started, end),
    )


def measure(flood: Flood, *, breakdown: bool = False, scratch: Path | None = None) -> FloodResult:
    """`measure_async` in its own event loop, in this process."""
    return asyncio.run(measure_async(flood, breakdown=breakdown, scratch=scratch))


def measure_isolated(flood: Flood, *, breakdown: bool = False) -> FloodResult:
    """`measure` in a fresh Python process, so its RSS is this workload's alone."""
    with tempfile.TemporaryDirectory(prefix="vlm-tui-flood-result-") as folder:
        result_file = Path(folder) / "result.json"
        command = [sys.executable, "-m", MODULE, *flood.flags()]
        command += ["--result-file", str(result_file)]
        command += ["--breakdown"] if breakdown else []
        subprocess.run(command, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
        return FloodResult.from_json(json.loads(result_file.read_text(encoding="utf-8")))


# ---- reporting ----------------------------------------------------------------------------------


def _rate_name(rate: int) -> str:
    return "max" if rate <= 0 else f"{rate:,}"


def _pipeline(real: bool) -> str:
    return "real supervisor" if real else "stand-in"


def format_table(results: Sequence[FloodResult]) -> str:
    """The figures as a Markdown table, one row per pipeline and rate."""
    header = (
        "| pipeline | target lines/s | lines | offered lines/s | received lines/s "
        "| written to Log lines/s | longest stall ms | p99 stall ms | peak RSS MB "
        "| ru_maxrss MB | RSS at end MB "
        "| loss points | lag s | kept up | CPU % | load 1 min |"
    )
    rows = [header, "|---|" + "---:|" * 12 + ":---:|---:|---:|"]
    for one in results:
        lag = "did not catch up" if one.lag_s is None else f"{one.lag_s:.2f}"
        # An unpaced producer outruns any reader: keeping up means nothing there.
        kept_up = "n/a" if one.rate <= 0 else "yes" if one.kept_up else "no"
        rows.append(
            f"| {_pipeline(one.flood.supervisor)} | {_rate_name(one.rate)} | {one.offered_lines:,} "
            f"| {one.offered_per_s:,.0f} "
            f"| {one.received_per_s:,.0f} | {one.written_per_s:,.0f} "
            f"| {one.longest_stall_ms:.1f} | {one.p99_stall_ms:.1f} | {one.peak_rss_mb:.0f} "
            f"| {one.ru_maxrss_mb:.0f} | {one.final_rss_mb:.0f} | {one.loss_points:,} | {lag} "
            f"| {kept_up} | {one.cpu_percent:.0f} | {one.load_average:.1f} |"
        )
    return "\n".join(rows)


def format_breakdown(results: Sequence[FloodResult]) -> str:
    """Per-function timings of the runs that were instrumented, as a Markdown table."""
    rows = [
        "| pipeline | target lines/s | function | calls | wall s | CPU s | max ms | p99 ms |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for one in results:
        for name, times in one.breakdown.items():
            rows.append(
                f"| {_pipeline(one.flood.supervisor)} | {_rate_name(one.rate)} | `{name}` "
                f"| {times.calls:,} | {times.total_s:.2f} | {times.cpu_s:.2f} "
                f"| {times.max_ms:.1f} | {times.p99_ms:.1f} |"
            )
    return "\n".join(rows) if len(rows) > 2 else ""


def target_verdict(results: Sequence[FloodResult]) -> str:
    """The issues' targets these results speak to, met or missed; empty when none."""
    verdicts: list[str] = []
    for real in (False, True):
        at_target = [
            one for one in results if one.rate == TARGET_RATE and one.flood.supervisor == real
        ]
        if not at_target:
            continue
        worst = max(one.longest_stall_ms for one in at_target)
        verdict = "met" if worst <= TARGET_STALL_MS else "missed"
        verdicts.append(
            f"Target (no stall over {TARGET_STALL_MS:.0f} ms at 50k lines/s), "
            f"{_pipeline(real)}: **{verdict}**, longest stall {worst:.1f} ms."
        )
    long_runs = [one for one in results if one.offered_lines >= LONG_RUN_LINES]
    if long_runs:
        peak = max(one.peak_rss_mb for one in long_runs)
        verdict = "met" if peak < LONG_RUN_RSS_MB else "missed"
        verdicts.append(
            f"Target (RSS under {LONG_RUN_RSS_MB:.0f} MB after 10M lines): **{verdict}**, "
            f"peak RSS {peak:.0f} MB."
        )
    return " ".join(verdicts)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def machine_lines() -> list[str]:
    """The machine, without its name: CPU, cores, memory, OS and the versions that matter."""
    cores = os.cpu_count() or 0
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    memory = psutil.virtual_memory().total / 1024**3
    return [
        f"- CPU: {_cpu_model()}, {cores} cores ({usable} usable by this process)",
        f"- memory: {memory:.0f} GiB, OS: {platform.system()}",
        f"- Python {platform.python_version()}, Textual {textual.__version__}",
    ]


METHOD = (
    "Method: a producer process prints training output at the target rate, in 10 ms slices. "
    "Two pipelines: *real supervisor*, the producer runs as the child of the real supervisor, "
    "which writes its output to `train.log` and parses it into `metrics.jsonl` and "
    "`status.json` (3 processes on the machine's cores, as in a real run); *stand-in*, the "
    "producer writes `train.log` itself and records its own numbers (a metrics record a step, "
    "status once a second) without parsing: the monitor alone, without a parser competing for "
    "the cores. Per training step the producer prints one "
    "metric dict over a tqdm bar (carriage-return redraws, no newline until the bar ends), "
    "then axolotl logger lines, torch glog warnings, Python warnings and accelerate lines; "
    f"every {TRACEBACK_EVERY_STEPS} steps a short traceback. Each metric dict is a point on the "
    "loss chart, so lines per step sets how fast the chart grows. A headless Textual app "
    f"({SIZE[0]}x{SIZE[1]}) shows the real `MonitorScreen` following the folder (GPU panel "
    "without NVML). On the same event loop an asyncio task sleeps 5 ms at a time: a stall is "
    "how late it wakes. RSS is sampled every 100 ms with psutil (ru_maxrss is the kernel's "
    "peak for the process); each workload runs in a fresh process. Lines received (by the "
    "log pane) and written (to the `Log` widget) per second are counted from the producer's "
    "first line until the monitor reached the end of the log; lag is how long after the "
    f"producer finished that took, and kept up means a lag of at most {KEPT_UP_LAG_S:g} s "
    "with every line received. CPU % is this process's CPU time (UI thread and log-reading "
    "worker) over that time, 100 being one core; load is the machine's 1-minute load average "
    "when the flood started, and the noise floor is the same probe on an empty event loop "
    "just before: stalls that no change to the app can remove. Headless: the screen is "
    "drawn, but no escape codes are written to a terminal."
)


def command_line(
    flood: Flood,
    rates: Sequence[int],
    *,
    breakdown: bool = False,
    pipelines: Sequence[str] | None = None,
) -> str:
    """The command that reruns a set of workloads (all alike but for their rate)."""
    listed = ",".join(str(rate) if rate > 0 else "max" for rate in rates)
    parts = ["python -m", MODULE, "--rates", listed]
    if pipelines is not None:
        parts += ["--pipelines", ",".join(pipelines)]
    if flood.lines is not None:
        parts += ["--lines", str(flood.lines)]
    else:
        parts += ["--seconds", f"{flood.seconds:g}"]
    if flood.lines_per_step != LINES_PER_STEP:
        parts += ["--lines-per-step", str(flood.lines_per_step)]
    if breakdown:
        parts.append("--breakdown")
    return " ".join(parts)


def floor_line(floor: tuple[float, float], seconds: float) -> str:
    return (
        f"- noise floor: the same probe on an empty event loop for {seconds:g} s: longest "
        f"{floor[0]:.1f} ms, p99 {floor[1]:.1f} ms"
    )


def subsection(
    results: Sequence[FloodResult],
    command: str,
    floor: tuple[float, float] | None = None,
    floor_seconds: float = 0.0,
) -> str:
    """One run of the command: its machine, figures, verdict and any per-function times."""
    flood = results[0].flood
    length = f"{flood.lines:,} lines" if flood.lines is not None else f"{flood.seconds:g} s"
    parts = [
        f"### `{command}`",
        "",
        f"{length} per rate, {flood.lines_per_step} lines per training step. Machine:",
        "",
        *machine_lines(),
        *([floor_line(floor, floor_seconds)] if floor is not None else []),
        "",
        format_table(results),
    ]
    verdict = target_verdict(results)
    if verdict:
        parts += ["", verdict]
    detail = format_breakdown(results)
    if detail:
        parts += [
            "",
            "Time per function (`RecordFollower.poll` runs in the worker thread, the rest on the "
            "UI thread; wall time includes waiting for the GIL, CPU time does not; `_absorb` "
            "includes `add_lines` and the chart's `extend`, `_refresh_layout` includes `render`):",
            "",
            detail,
        ]
    return "\n".join(parts) + "\n"


def _split_subsections(section: str) -> dict[str, str]:
    """The `### ` subsections of a section's text, by heading line, in order."""
    found: dict[str, str] = {}
    heading: str | None = None
    body: list[str] = []
    for line in [*section.splitlines(), "### "]:
        if line.startswith("### "):
            if heading is not None:
                found[heading] = "\n".join(body).strip("\n") + "\n"
            heading, body = line.strip(), [line]
        elif heading is not None:
            body.append(line)
    return found


def section_text(document: str, title: str = SECTION_TITLE) -> str:
    """The level-2 section called `title` (heading included), or an empty string."""
    lines = document.splitlines()
    start = next((index for index, line in enumerate(lines) if line.strip() == title), None)
    if start is None:
        return ""
    end = next(
        (index for index in range(start + 1, len(lines)) if lines[index].startswith("## ")),
        len(lines),
    )
    return "\n".join(lines[start:end])


def replace_section(document: str, section: str, title: str = SECTION_TITLE) -> str:
    """`document` with the level-2 section called `title` replaced by `section` (or added)."""
    lines = document.splitlines()
    start = next((index for index, line in enumerate(lines) if line.strip() == title), None)
    if start is None:
        kept = document.rstrip("\n")
        return f"{kept}\n\n{section.rstrip()}\n" if kept else f"{section.rstrip()}\n"
    end = next(
        (index for index in range(start + 1, len(lines)) if lines[index].startswith("## ")),
        len(lines),
    )
    before = "\n".join(lines[:start]).rstrip("\n")
    after = "\n".join(lines[end:]).strip("\n")
    pieces = [piece for piece in (before, section.rstrip(), after) if piece]
    return "\n\n".join(pieces) + "\n"


def write_section(path: Path, section: str, title: str) -> None:
    """Replace (or add) the section called `title` in the markdown file at `path`."""
    document = path.read_text(encoding="utf-8") if path.exists() else FILE_HEADER
    path.write_text(replace_section(document, section, title), encoding="utf-8")


def update_document(
    document: str,
    results: Sequence[FloodResult],
    command: str,
    floor: tuple[float, float] | None = None,
    floor_seconds: float = 0.0,
) -> str:
    """`document` with this command's figures in the flood section, other figures kept."""
    subsections = _split_subsections(section_text(document))
    new = subsection(results, command, floor, floor_seconds)
    subsections[new.splitlines()[0].strip()] = new
    section = "\n".join([SECTION_TITLE, "", METHOD, "", *subsections.values()])
    return replace_section(document, section)


def write_markdown(
    path: Path,
    results: Sequence[FloodResult],
    command: str,
    floor: tuple[float, float] | None = None,
    floor_seconds: float = 0.0,
) -> None:
    document = path.read_text(encoding="utf-8") if path.exists() else FILE_HEADER
    updated = update_document(document, results, command, floor, floor_seconds)
    path.write_text(updated, encoding="utf-8")


# ---- command line -------------------------------------------------------------------------------


def _rates(text: str) -> list[int]:
    rates = []
    for part in text.split(","):
        part = part.strip().lower().replace("_", "")
        if part:
            rates.append(0 if part == "max" else int(part))
    return rates


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=f"python -m {MODULE}",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rates", default=",".join(str(rate) for rate in DEFAULT_RATES))
    parser.add_argument("--seconds", type=float, default=DEFAULT_SECONDS)
    parser.add_argument("--lines", type=int, help="write this many lines instead (long runs)")
    parser.add_argument("--lines-per-step", type=int, default=LINES_PER_STEP)
    parser.add_argument("--write-markdown", type=Path, metavar="FILE")
    parser.add_argument("--breakdown", action="store_true", help="time the UI-side callbacks")
    parser.add_argument("--in-process", action="store_true", help="all rates in this process")
    parser.add_argument("--profile", type=Path, metavar="FILE", help="cProfile the UI thread")
    parser.add_argument(
        "--floor-seconds",
        type=float,
        default=FLOOR_SECONDS,
        help="first measure the machine's noise floor for this long (0: skip)",
    )
    # Internal: the producer process, and one workload measured for a parent process.
    parser.add_argument(
        "--pipelines",
        default=DEFAULT_PIPELINES,
        help="stand-in: the monitor alone (the producer records its own numbers); real: the"
        " real supervisor runs the producer and parses its output",
    )
    parser.add_argument("--produce", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--record-to", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    rates = _rates(args.rates)
    pipelines = [part.strip() for part in args.pipelines.split(",") if part.strip()]
    if not pipelines or set(pipelines) - {"real", "stand-in"}:
        parser.error("--pipelines: a list of real, stand-in")
    floods = [
        Flood(rate, args.seconds, args.lines, args.lines_per_step, pipeline == "real")
        for pipeline in pipelines
        for rate in rates
    ]

    if args.produce is not None:
        flood = floods[0]
        with contextlib.ExitStack() as stack:
            out: BinaryIO = sys.stdout.buffer  # under the real supervisor: train.log
            stand_in = None
            if args.record_to is not None:
                paths = RunPaths(args.record_to)
                out = stack.enter_context(paths.log.open("ab", buffering=0))
                stand_in = StandIn(paths)
            report = produce(
                out, flood.rate, flood.seconds, flood.lines, flood.lines_per_step, stand_in
            )
        args.produce.write_text(json.dumps(asdict(report)), encoding="utf-8")
        return 0
    if args.result_file is not None:
        result = measure(floods[0], breakdown=args.breakdown)
        args.result_file.write_text(json.dumps(result.to_json()), encoding="utf-8")
        return 0

    floor = None
    if args.floor_seconds > 0:
        floor = noise_floor(args.floor_seconds)
        print(floor_line(floor, args.floor_seconds).removeprefix("- "), file=sys.stderr)
    results: list[FloodResult] = []
    for flood in floods:
        print(f"flooding at {_rate_name(flood.rate)} lines/s ...", file=sys.stderr, flush=True)
        run: Callable[[], FloodResult]
        if args.in_process or args.profile is not None:
            run = functools.partial(measure, flood, breakdown=args.breakdown)
        else:
            run = functools.partial(measure_isolated, flood, breakdown=args.breakdown)
        if args.profile is not None:
            profiler = cProfile.Profile()
            result = profiler.runcall(run)
            profiler.dump_stats(f"{args.profile}.{flood.rate or 'max'}")
        else:
            result = run()
        results.append(result)
    print(format_table(results))
    detail = format_breakdown(results)
    if detail:
        print()
        print(detail)
    verdict = target_verdict(results)
    if verdict:
        print()
        print(verdict)
    if args.write_markdown is not None:
        chosen = None if args.pipelines == DEFAULT_PIPELINES else pipelines
        command = command_line(floods[0], rates, breakdown=args.breakdown, pipelines=chosen)
        write_markdown(args.write_markdown, results, command, floor, args.floor_seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
