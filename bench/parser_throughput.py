"""Output throughput: the supervisor's parsing and recording against a bare read loop.

A seeded generator writes a realistic training log once: what axolotl 0.19 and transformers
print through a pipe (tqdm's trainer bar redrawn with carriage returns, metric dicts written
over a cleared bar, axolotl and torch log lines, Python warnings, eval bars and dicts,
checkpoint saves, a few rank tracebacks, the final summary). Then, in interleaved rounds:

- limit: a bare Python loop that reads the file line by line in text mode and does nothing;
- vlm-tui: exactly the supervisor's per-chunk work on 1 MiB binary reads (`ChunkRecorder`:
  the lines that matter through the parser, metric dicts in bulk, RunState, metrics.jsonl),
  plus the status.json rewrite once per simulated second;
- before: the same with the recorder the supervisor used before, `OutputRecorder` (every line
  through the reference parser), so the two are measured side by side.

    python -m bench.parser_throughput [--lines 1000000] [--rounds 5] [--write-markdown FILE]
"""

from __future__ import annotations

import argparse
import codecs
import cProfile
import io
import json
import math
import pstats
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.ui_flood import FILE_HEADER, machine_lines, replace_section
from vlm_tui.core.output.output_parser import Metrics, parse_dict
from vlm_tui.core.output.run_state import OutputRecorder, metric_line
from vlm_tui.core.records.folder import RunPaths, read_json
from vlm_tui.core.records.status_file import StatusWriter
from vlm_tui.core.supervise.recording import READ_CHUNK, record_finished_log

SECTION_TITLE = "## Output throughput"
# Where the section goes when BENCHMARKS.md does not have it yet: before this one.
NEXT_SECTION_TITLE = "## UI under a flood"
MODULE = "bench.parser_throughput"
DEFAULT_LINES = 1_000_000
DEFAULT_ROUNDS = 5
DEFAULT_SEED = 7
# Steps between metric dicts: tqdm redraws the bar every step, so redraws are most lines.
DEFAULT_LOGGING_STEPS = 10
# The target: at least half the speed of the bare read loop.
TARGET_RATIO = 0.5
PROFILE_ENTRIES = 12
QUICK_LINES = 5_000
# What was done and what is left: history and reasons, written when the parser was sped up.
NOTES = """\
What makes it fast, and what was measured before:

- The supervisor reads per 1 MiB read, not per line (`core/output/chunk_reader.py`): one split
  into lines, then the lines that matter are found with operations that run in C over all of
  them (the text each line shows last, `{` for dicts, one failure-prefilter search over those
  texts, finds for save lines and traceback starts, one `bytes.translate` for control
  characters). Only those lines go through the reference parser; the lines between are not
  read at all, except for the trainer bar: before a line the reference reads and at the end of
  the read, the last trainer bar of the skipped lines is read, searching back from their end
  (one or two segments, usually).
- The metric dicts are read in bulk: one regex with possessive repeats checks all of a read's
  dicts against the plain form a training prints, six `str.replace` turn them into JSON, one
  `json.loads` decodes them, and their `metrics.jsonl` lines are written from that JSON text
  (no number formatted again); RunState takes their numbers in one call. A dict's step comes
  from the bar drawn just before it, read by the bar's form (slicing, no regex).
- What the reference parser does to be fast (a redraw replaced later in the same read skipped
  by its form, fields parsed on first use) still serves the lines it reads and the log views,
  which follow train.log with it.
- The parser's history on this log: 90,244 lines/s (0.024x) when it classified every line
  and parsed every redraw; 233,275 lines/s (0.063x, 2.6x faster) with the reference's own
  speed-ups; the *before* row above is that parser, run in the same rounds as the chunk
  reader.

What is left, and why the target is missed: the limit is one C loop that decodes, finds a line
end and makes a string. Each of the steps that remain is itself a C pass over much of the
read, or a Python step per metric dict, and several of them alone take a good part of the
limit's time: decoding and splitting (the reference row above), the prefilter search over the
lines' texts (the same search the reference does), and for each of the 57,749 dicts its share
of the check, the rewrite and the decoding, plus reading its step from the bar before it and
folding it into RunState (a few microseconds each, Python). Half the limit would need the dicts
decoded and the lines scanned in one compiled pass (an extension module; the core has none),
or recording fewer of the numbers the training prints."""

SECONDS_PER_STEP = 0.45
EPOCHS = 3.0
# A log message follows the bar at this share of steps.
LOG_MESSAGE_CHANCE = 0.1
EVAL_EVERY_STEPS = 500
EVAL_BATCHES = 20
SAVE_EVERY_STEPS = 1000
TRACEBACK_EVERY_STEPS = 5000
RANKS = 8


# ---- the log -------------------------------------------------------------------------------

_BLOCKS = " ▏▎▍▌▋▊▉█"
_TRACEBACK = (
    "Traceback (most recent call last):",
    '  File "site-packages/torch/utils/data/_utils/worker.py", line 349, in _worker_loop',
    "    data = fetcher.fetch(index)",
    '  File "site-packages/axolotl/utils/collators/mm_chat.py", line 57, in __call__',
    "    images = [self.processor.load_image(path) for path in paths]",
    '  File "site-packages/PIL/Image.py", line 3431, in open',
    '    fp = builtins.open(filename, "rb")',
    "FileNotFoundError: [Errno 2] No such file or directory: 'images/{step:06d}.jpg'",
)


def _clock(seconds: float) -> str:
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    if hours:
        return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"
    return f"{rest // 60:02d}:{rest % 60:02d}"


def _bar(step: int, total: int, elapsed: float, desc: str = "") -> str:
    """A tqdm bar as printed through a pipe (10 cells): ' 45%|████▌     | 45/100 [...]'."""
    fraction = step / total
    eighths = int(fraction * 80)
    cells = "█" * (eighths // 8) + (_BLOCKS[eighths % 8] if eighths < 80 else "")
    rate = step / elapsed if elapsed > 0 and step else 0.0
    remaining = _clock((total - step) / rate) if rate else "?"
    speed = "?it/s" if not rate else (f"{rate:5.2f}it/s" if rate >= 1 else f"{1 / rate:5.2f}s/it")
    prefix = f"{desc}: " if desc else ""
    return (
        f"{prefix}{int(fraction * 100):3d}%|{cells:<10}| {step}/{total} "
        f"[{_clock(elapsed)}<{remaining}, {speed}]"
    )


def _stamp(elapsed: float) -> str:
    """A logger timestamp on a fixed day, advancing with the simulated clock."""
    whole = int(elapsed) + 11 * 3600 + 14 * 60
    day = 24 + whole // 86400
    whole %= 86400
    millis = int((elapsed - int(elapsed)) * 1000)
    clock = f"{whole // 3600:02d}:{whole // 60 % 60:02d}:{whole % 60:02d}"
    return f"2026-11-{day:02d} {clock},{millis:03d}"


def _g(value: float) -> str:
    return f"{value:.4g}"


def _train_dict(rng: random.Random, step: int, total: int) -> str:
    """A transformers 5 log dict as axolotl extends it: quoted '.4g' floats, some ints."""
    progress = step / total
    loss = 2.2 * math.exp(-4.0 * progress) + 0.35 + rng.uniform(-0.05, 0.05)
    lr = 2e-4 * 0.5 * (1.0 + math.cos(math.pi * progress))
    tokens = 2048 * 8 * step
    return (
        f"{{'loss': '{_g(loss)}', 'grad_norm': '{_g(rng.uniform(0.4, 1.6))}', "
        f"'learning_rate': '{_g(lr)}', 'ppl': '{_g(math.exp(loss))}', "
        f"'memory/max_active (GiB)': '{_g(61.2 + rng.uniform(0, 0.4))}', "
        f"'memory/max_allocated (GiB)': '{_g(58.9 + rng.uniform(0, 0.4))}', "
        f"'memory/device_reserved (GiB)': '{_g(72.5)}', "
        f"'tokens/train_per_sec_per_gpu': '{_g(rng.uniform(2900, 3300))}', "
        f"'tokens/trainable': {tokens // 2}, 'tokens/total': {tokens}, "
        f"'epoch': '{_g(EPOCHS * progress)}'}}"
    )


def _log_line(rng: random.Random, step: int, elapsed: float) -> list[str]:
    """One log message of the kinds a multi-GPU run prints while it trains (1-3 lines)."""
    stamp = _stamp(elapsed)
    rank = rng.randrange(RANKS)
    roll = rng.random()
    if roll < 0.3:
        return [
            f"[{stamp}] [WARNING] [py.warnings] site-packages/torch/utils/checkpoint.py:86: "
            "UserWarning: None of the inputs have requires_grad=True. Gradients will be None",
            "  warnings.warn(",
        ]
    if roll < 0.55:
        return [
            f"[rank{rank}]:[W1124 11:20:52.{rng.randrange(10**6):06d} {4200 + rank} "
            "torch/distributed/c10d/ProcessGroupNCCL.cpp:4561] Warning: barrier took "
            f"{rng.randrange(1, 900)} ms"
        ]
    if roll < 0.75:
        return [
            f"[{stamp}] [INFO] [axolotl.utils.samplers.multipack] [RANK:{rank}] generating "
            f"packed batches for step {step}: {rng.randrange(80, 120)} samples"
        ]
    if roll < 0.9:
        return [
            f"[{stamp}] [WARNING] [axolotl.utils.collators.mm_chat] [RANK:{rank}] image "
            f"{step}-{rng.randrange(64)} is larger than max_pixels; resized to 1024x1024"
        ]
    return [
        "site-packages/transformers/image_processing_utils.py:41: UserWarning: The following "
        "named arguments are not valid for `Qwen2VLImageProcessor.preprocess` and were ignored"
    ]


def _preamble(elapsed: float) -> list[str]:
    stamp = _stamp(elapsed)
    lines = [
        f"[{stamp}] [INFO] [axolotl.cli.config] config:",
        "{",
        *(f'  "option_{index:03d}": {index},' for index in range(120)),
        '  "logging_steps": 10',
        "}",
        f"[{stamp}] [INFO] [axolotl.utils.data.sft] Loading raw datasets...",
        f"[{stamp}] [INFO] [axolotl.loaders.model] Converting modules to torch.bfloat16",
        "trainable params: 18,464,768 || all params: 2,227,450,880 || trainable%: 0.8290",
        f"[{stamp}] [INFO] [axolotl.train] Starting trainer...",
    ]
    return [line + "\n" for line in lines]


@dataclass
class TrainingLog:
    """A generated log and what is in it."""

    text: str
    steps: int
    logging_steps: int
    # By kind of output: how many were printed, and the line ends they hold (see count_lines).
    items: Counter[str] = field(default_factory=Counter)
    ends: Counter[str] = field(default_factory=Counter)

    @property
    def lines(self) -> int:
        return count_lines(self.text)


class _Writer:
    """Collects the log's pieces and counts the lines each kind adds."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.items: Counter[str] = Counter()
        self.ends: Counter[str] = Counter()
        self.lines = 0

    def add(self, kind: str, piece: str, items: int = 1) -> None:
        ends = piece.count("\n") + piece.count("\r") - piece.count("\r\n")
        self.parts.append(piece)
        self.items[kind] += items
        self.ends[kind] += ends
        self.lines += ends


def training_log(
    lines: int, seed: int = DEFAULT_SEED, logging_steps: int = DEFAULT_LOGGING_STEPS
) -> TrainingLog:
    """A training's merged stdout and stderr, about `lines` lines as a text-mode reader counts
    them (each carriage return ends one), deterministic for a seed."""
    rng = random.Random(seed)
    # Lines a step adds on average: its redraw; the clear, dict and redraw of tqdm.write every
    # logging_steps; a log message (1.3 lines and a redraw) every tenth step; evals.
    per_step = 1.0 + 4.0 / logging_steps + 0.23 + (2 * EVAL_BATCHES + 6) / EVAL_EVERY_STEPS
    total = max(int(lines / per_step), 20)
    out = _Writer()
    for line in _preamble(0.0):
        out.add("start-up lines", line)
    # Dataset preparation: a bar with a description, redrawn like the trainer's.
    for done in range(0, 65, 8):
        out.add("bar redraws", "\r" + _bar(done, 64, done * 0.01 + 0.01, "Map (num_proc=8)"))
    out.add("start-up lines", "\n", 0)
    bar = _bar(0, total, 0.0)
    out.add("bar redraws", "\r" + bar)
    step = 0
    while step < total and out.lines < lines:
        step += 1
        elapsed = step * SECONDS_PER_STEP
        bar = _bar(step, total, elapsed)
        out.add("bar redraws", "\r" + bar)
        if step % logging_steps == 0:
            # tqdm.write: clear the bar, print the dict on its own line, redraw the bar.
            out.add("bar clears", "\r" + " " * len(bar) + "\r")
            out.add("metric dicts", _train_dict(rng, step, total) + "\n")
            out.add("bar redraws", "\r" + bar)
        if rng.random() < LOG_MESSAGE_CHANCE:
            # Logging prints right after the bar, without clearing it.
            message = _log_line(rng, step, elapsed)
            out.add("log lines", "".join(line + "\n" for line in message), len(message))
            out.add("bar redraws", "\r" + bar)
        if step % EVAL_EVERY_STEPS == 0:
            _eval(out, rng, step, total)
            out.add("bar redraws", "\r" + bar)
        if step % SAVE_EVERY_STEPS == 0:
            out.add(
                "log lines",
                f"[{_stamp(elapsed)}] [INFO] [axolotl.core.trainers.base] Saving model "
                f"checkpoint to ./outputs/out/checkpoint-{step}\n",
            )
            out.add("bar redraws", "\r" + bar)
        if step % TRACEBACK_EVERY_STEPS == 0:
            # A data loader worker's error, logged with its traceback by two ranks; the run
            # goes on (the sample is skipped).
            for rank in (1, 5):
                text = "".join(f"[rank{rank}]: {line.format(step=step)}\n" for line in _TRACEBACK)
                out.add("traceback lines", text, len(_TRACEBACK))
            out.add("bar redraws", "\r" + bar)
    elapsed = step * SECONDS_PER_STEP
    out.add("bar clears", "\r" + " " * len(bar) + "\r")
    out.add(
        "metric dicts",
        f"{{'train_runtime': '{_g(elapsed)}', 'train_samples_per_second': "
        f"'{_g(step * 8 / elapsed)}', 'train_steps_per_second': '{_g(1 / SECONDS_PER_STEP)}', "
        f"'train_loss': '{_g(0.61)}', 'epoch': '{_g(EPOCHS * step / total)}'}}\n",
    )
    out.add("bar redraws", "\r" + bar + "\n")
    stamp = _stamp(elapsed)
    out.add(
        "log lines",
        f"[{stamp}] [INFO] [axolotl.train] Training completed! Saving trained model to "
        f"./outputs/out.\n[{stamp}] [INFO] [axolotl.train] Model successfully saved to "
        "./outputs/out\n",
        2,
    )
    return TrainingLog("".join(out.parts), step, logging_steps, out.items, out.ends)


def _eval(out: _Writer, rng: random.Random, step: int, total: int) -> None:
    """The eval bar (tqdm position 1: a newline, the bar, cursor up) and the eval dict."""
    for batch in range(EVAL_BATCHES + 1):
        out.add("bar redraws", "\n\r" + _bar(batch, EVAL_BATCHES, 0.05 * batch + 0.01) + "\x1b[A")
    out.add("bar clears", "\n\r" + " " * 46 + "\x1b[A\r" + " " * 46 + "\r")
    out.add(
        "metric dicts",
        f"{{'eval_loss': '{_g(0.5 + rng.uniform(0, 0.1))}', 'eval_runtime': '1.012', "
        f"'eval_samples_per_second': '{_g(rng.uniform(150, 170))}', "
        f"'eval_steps_per_second': '{_g(rng.uniform(19, 21))}', "
        f"'epoch': '{_g(EPOCHS * step / total)}'}}\n",
    )


def count_lines(text: str) -> int:
    """Lines as Python's text mode reads them: \\n, \\r and \\r\\n each end one."""
    ends = text.count("\n") + text.count("\r") - text.count("\r\n")
    return ends + (0 if not text or text.endswith(("\n", "\r")) else 1)


# ---- the workloads -------------------------------------------------------------------------


def bare_read(log: Path) -> None:
    """The limit: read the file line by line in text mode and do nothing."""
    with log.open(encoding="utf-8") as source:
        for _line in source:
            pass


def split_only(log: Path) -> None:
    """What any parser of this output starts with: decode 1 MiB reads, split them into lines
    and each line into its carriage-return segments; nothing else."""
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    with log.open("rb") as source:
        while chunk := source.read(READ_CHUNK):
            for line in decoder.decode(chunk).split("\n"):
                line.split("\r")


def metric_dict_lines(text: str) -> list[str]:
    """The metric dicts of a log, as the parser sees them (the last segment of their line)."""
    return [last for line in text.split("\n") if (last := line.rpartition("\r")[2]).startswith("{")]


def dicts_only(dict_lines: list[str], sink: Path) -> None:
    """A floor for any exact parser: only the metric dicts, each parsed to numbers and written
    as its metrics.jsonl record; no other line looked at, no state kept."""
    with sink.open("w", encoding="utf-8") as metrics:
        for step, text in enumerate(dict_lines):
            _keys, values = parse_dict(text)
            metrics.write(metric_line(Metrics(step, values), 0.0) or "")


@dataclass
class Recorded:
    """The run folder one pass of the supervisor's pipeline wrote."""

    paths: RunPaths
    status_writes: int

    def records(self) -> Counter[str]:
        """metrics.jsonl's records by kind."""
        kinds: Counter[str] = Counter()
        with self.paths.metrics.open(encoding="utf-8") as lines:
            for line in lines:
                kinds[json.loads(line)["kind"]] += 1
        return kinds

    def status(self) -> dict[str, Any]:
        return read_json(self.paths.status) or {}

    def decoded(self) -> list[dict[str, Any]]:
        """metrics.jsonl's records, time left out (each pass has its own clock)."""
        with self.paths.metrics.open(encoding="utf-8") as lines:
            return [{**json.loads(line), "time": 0} for line in lines]


def record_run(log: Path, folder: Path, logging_steps: int, *, before: bool = False) -> Recorded:
    """The supervisor's work on the log, through its own recording step
    (`record_finished_log`): 1 MiB binary reads, each through ChunkRecorder (or, `before`,
    OutputRecorder: every line through the parser), and status.json rewritten when a second
    has passed since the last rewrite (checked after each read), then at the end.
    """
    paths = RunPaths(folder)
    folder.mkdir(parents=True)
    state, writes = record_finished_log(
        paths,
        {"logging_steps": logging_steps},
        {"state": "finished"},
        log=log,
        **({"recorder_type": OutputRecorder} if before else {}),
    )
    StatusWriter(paths.status).update(**state.failure_fields())
    return Recorded(paths, writes)


# ---- measuring -----------------------------------------------------------------------------

LIMIT = "limit"
VLM_TUI = "vlm-tui"
BEFORE = "before"
SPLIT = "split"
DICTS = "dicts"
WORKLOADS = {
    LIMIT: "limit: bare `for line in f: pass`, text mode",
    VLM_TUI: "vlm-tui: chunk reader, RunState, metrics.jsonl, status.json",
    BEFORE: "before: every line through the parser (the reference), the same records",
    SPLIT: "reference: decode and split into lines and segments only",
    DICTS: "reference: the metric dicts alone, parsed and recorded",
}


@dataclass
class ProfileRow:
    function: str
    calls: int
    own_s: float
    share: float  # of the profiled pass's total own time


@dataclass
class Measurement:
    log: TrainingLog
    log_bytes: int
    seconds: dict[str, list[float]]  # wall clock, per round
    cpu_seconds: dict[str, list[float]]  # this process's CPU time, per round
    # What the first vlm-tui pass wrote: metrics.jsonl records by kind, status.json.
    records: Counter[str]
    status: dict[str, Any]
    status_writes: int
    peak_rss_mb: dict[str, float]
    profile: list[ProfileRow]
    # Did the reference recorder write the same records and status.json?
    same_as_before: bool

    def median(self, workload: str) -> float:
        return statistics.median(self.seconds[workload])

    def cpu_median(self, workload: str) -> float:
        return statistics.median(self.cpu_seconds[workload])

    @property
    def ratio(self) -> float:
        """vlm-tui's speed over the limit's, from medians taken side by side."""
        return self.median(LIMIT) / self.median(VLM_TUI)

    @property
    def cpu_ratio(self) -> float:
        return self.cpu_median(LIMIT) / self.cpu_median(VLM_TUI)

    @property
    def speed_up(self) -> float:
        """vlm-tui's speed over the reference recorder's, from medians taken side by side."""
        return self.median(BEFORE) / self.median(VLM_TUI)


def peak_rss_mb(workload: str, log: Path, logging_steps: int) -> float:
    """ru_maxrss of a fresh process that does only this workload (the log is not in memory)."""
    done = subprocess.run(
        [sys.executable, "-m", MODULE, "--rss-of", workload, "--log", str(log),
         "--logging-steps", str(logging_steps)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return float(done.stdout.strip())


def _rss_of(workload: str, log: Path, logging_steps: int) -> float:
    if workload == LIMIT:
        bare_read(log)
    elif workload == SPLIT:
        split_only(log)
    else:
        with tempfile.TemporaryDirectory(prefix="vlm-tui-throughput-") as scratch:
            record_run(log, Path(scratch) / "run", logging_steps, before=workload == BEFORE)
    return _peak_rss_mb()


def _peak_rss_mb() -> float:
    """This process's peak RSS. VmHWM where Linux has it: ru_maxrss of a process started by
    vfork and exec also counts its parent's peak."""
    try:
        for line in Path("/proc/self/status").read_text(encoding="utf-8").splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def profile_rows(log: Path, scratch: Path, logging_steps: int, entries: int) -> list[ProfileRow]:
    profiler = cProfile.Profile()
    profiler.runcall(record_run, log, scratch / "profiled", logging_steps)
    stats = pstats.Stats(profiler, stream=io.StringIO())
    table = stats.stats  # type: ignore[attr-defined]
    total = sum(row[2] for row in table.values()) or 1.0
    rows = []
    for (filename, _line, name), (_, calls, own, _, _) in table.items():
        # "~" is a C function, e.g. "<method 'split' of 'str' objects>".
        where = name.strip("<>") if filename == "~" else f"{Path(filename).stem}.{name}"
        rows.append(ProfileRow(where, calls, own, own / total))
    rows.sort(key=lambda row: -row.own_s)
    return rows[:entries]


def measure(
    lines: int = DEFAULT_LINES,
    rounds: int = DEFAULT_ROUNDS,
    seed: int = DEFAULT_SEED,
    logging_steps: int = DEFAULT_LOGGING_STEPS,
    profile_entries: int = PROFILE_ENTRIES,
) -> Measurement:
    log = training_log(lines, seed, logging_steps)
    with tempfile.TemporaryDirectory(prefix="vlm-tui-throughput-") as folder:
        scratch = Path(folder)
        path = scratch / "train.log"
        # newline="": the carriage returns stay as the training wrote them.
        path.write_text(log.text, encoding="utf-8", newline="")
        dict_lines = metric_dict_lines(log.text)
        calls: dict[str, Callable[[int], object]] = {
            LIMIT: lambda _: bare_read(path),
            VLM_TUI: lambda index: record_run(path, scratch / f"run-{index}", logging_steps),
            BEFORE: lambda index: record_run(
                path, scratch / f"before-{index}", logging_steps, before=True
            ),
            SPLIT: lambda _: split_only(path),
            DICTS: lambda index: dicts_only(dict_lines, scratch / f"dicts-{index}.jsonl"),
        }
        recorded = record_run(path, scratch / "warm-up", logging_steps)  # warms the file cache
        records, status = recorded.records(), recorded.status()
        reference = record_run(path, scratch / "warm-up-before", logging_steps, before=True)
        same = reference.decoded() == recorded.decoded() and reference.status() == status
        seconds: dict[str, list[float]] = {name: [] for name in calls}
        cpu: dict[str, list[float]] = {name: [] for name in calls}
        for index in range(rounds):
            for name, call in calls.items():
                started, cpu_started = time.perf_counter(), time.process_time()
                call(index)
                seconds[name].append(time.perf_counter() - started)
                cpu[name].append(time.process_time() - cpu_started)
        rss = {
            name: peak_rss_mb(name, path, logging_steps) for name in (LIMIT, VLM_TUI, BEFORE, SPLIT)
        }
        profile = profile_rows(path, scratch, logging_steps, profile_entries)
        size = path.stat().st_size
    return Measurement(
        log, size, seconds, cpu, records, status, recorded.status_writes, rss, profile, same
    )


# ---- BENCHMARKS.md -------------------------------------------------------------------------

METHOD = (
    "Method: a seeded generator writes a training log the way axolotl 0.19 and transformers "
    "print it through a pipe (stdout and stderr merged, as in `train.log`): the trainer's tqdm "
    "bar redrawn with carriage returns every step, a metric dict every `logging_steps` steps "
    "written over a cleared bar (tqdm.write), log messages printed right after the bar (axolotl "
    "lines, torch glog warnings with a `[rankN]:` prefix, Python warnings), an eval bar and dict "
    f"every {EVAL_EVERY_STEPS} steps, a checkpoint save every {SAVE_EVERY_STEPS}, a data "
    f"loader traceback from two ranks every {TRACEBACK_EVERY_STEPS}, then the summary dict and "
    "the final lines. Lines are counted as the limit reads them: text mode ends one at each "
    "carriage return too, so a bar redraw is a line. Each round runs every workload once on the "
    "same file (warm in the page cache), in one process: *limit* is the issue's bare loop; "
    "*vlm-tui* is the supervisor's work on that output (`ChunkRecorder`: 1 MiB binary reads, "
    "the lines that matter found per read and handed to `OutputParser`, the metric dicts read "
    "in bulk, `RunState`, a `metrics.jsonl` record per metric, eval, summary, checkpoint and "
    "traceback, flushed per read; `StatusWriter` rewriting `status.json` when a second has "
    "passed, as `Supervisor._follow` does) into a fresh run folder; *before* is the same with "
    "`OutputRecorder`, every line through `OutputParser.feed` (the reference, what the "
    "supervisor ran before), in the same rounds, and its records and `status.json` are "
    "compared with vlm-tui's. Two references "
    "bound what any parser of this output costs: decoding and splitting the same reads into "
    "lines and segments, nothing else; and only the metric dicts (their lines picked out "
    "before timing), each parsed into numbers and written as its record. Peak RSS is the peak "
    "resident set (VmHWM) of a fresh process running that workload once. Ratios are of "
    "medians taken in the same run."
)


def command_line(lines: int, rounds: int, seed: int, logging_steps: int) -> str:
    parts = ["python -m", MODULE]
    if lines != DEFAULT_LINES:
        parts += ["--lines", str(lines)]
    parts += ["--rounds", str(rounds)]
    if seed != DEFAULT_SEED:
        parts += ["--seed", str(seed)]
    if logging_steps != DEFAULT_LOGGING_STEPS:
        parts += ["--logging-steps", str(logging_steps)]
    return " ".join(parts)


def composition_table(log: TrainingLog) -> str:
    total = log.lines
    rows = ["| output | printed | line ends | share of lines |", "|---|---:|---:|---:|"]
    for kind, ends in log.ends.most_common():
        rows.append(f"| {kind} | {log.items[kind]:,} | {ends:,} | {ends / total:.1%} |")
    rows.append(f"| all | | {total:,} | 100% |")
    return "\n".join(rows)


def results_table(result: Measurement) -> str:
    lines = result.log.lines
    megabytes = result.log_bytes / 1e6
    rows = [
        "| workload | median s | min s | max s | median CPU s | lines/s | MB/s | peak RSS MB "
        "| rounds |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, title in WORKLOADS.items():
        runs = result.seconds[name]
        median = statistics.median(runs)
        rss = f"{result.peak_rss_mb[name]:.0f}" if name in result.peak_rss_mb else ""
        rows.append(
            f"| {title} | {median:.3f} | {min(runs):.3f} | {max(runs):.3f} "
            f"| {result.cpu_median(name):.3f} | {lines / median:,.0f} | {megabytes / median:.1f} "
            f"| {rss} | {len(runs)} |"
        )
    return "\n".join(rows)


def verdict(result: Measurement) -> str:
    ratio = result.ratio
    met = "met" if ratio >= TARGET_RATIO else "missed"
    split = result.median(LIMIT) / result.median(SPLIT)
    dicts = result.median(DICTS) / result.median(LIMIT)
    same = "the same" if result.same_as_before else "**not** the same"
    return (
        f"vlm-tui runs at **{ratio:.2f}x** the limit's speed (medians of wall time measured side "
        f"by side; {result.cpu_ratio:.2f}x by CPU time). Target (at least {TARGET_RATIO:g}x the "
        f"limit): **{met}**. Against the reference recorder it ran side by side with: "
        f"**{result.speed_up:.2f}x** as fast, and wrote {same} records and `status.json`. "
        f"Decoding and splitting alone run at {split:.2f}x the limit; the reference's reading "
        f"of the metric dicts alone takes {dicts:.2f}x the limit's time."
    )


def records_line(result: Measurement) -> str:
    kinds = ", ".join(f"{count:,} {kind}" for kind, count in sorted(result.records.items()))
    progress = result.status.get("progress") or {}
    return (
        f"Each vlm-tui pass wrote {kinds} records to `metrics.jsonl` and rewrote `status.json` "
        f"{result.status_writes} times; it ended at step {progress.get('step')} of "
        f"{progress.get('total')} (the log has {result.log.steps:,} steps, logging_steps "
        f"{result.log.logging_steps})."
    )


def profile_table(rows: list[ProfileRow]) -> str:
    """The profile's top entries (the profiler adds a cost to every Python call)."""
    table = ["| function | calls | own s | share |", "|---|---:|---:|---:|"]
    for row in rows:
        table.append(f"| `{row.function}` | {row.calls:,} | {row.own_s:.2f} | {row.share:.0%} |")
    return "\n".join(table)


def section(result: Measurement, command: str, notes: str = "") -> str:
    megabytes = result.log_bytes / 1e6
    parts = [
        SECTION_TITLE,
        "",
        METHOD,
        "",
        f"`{command}`. Machine:",
        "",
        *machine_lines(),
        "",
        f"The log: {result.log.lines:,} lines, {megabytes:.0f} MB, {result.log.steps:,} "
        f"training steps, logging_steps {result.log.logging_steps}:",
        "",
        composition_table(result.log),
        "",
        results_table(result),
        "",
        verdict(result),
        "",
        records_line(result),
        "",
        "### Where the time goes",
        "",
        "cProfile of one more vlm-tui pass, not timed (the profiler adds a cost to every "
        "Python call, so the shares matter, not the seconds); own time, the top entries:",
        "",
        profile_table(result.profile),
    ]
    if notes:
        parts += ["", notes]
    return "\n".join(parts) + "\n"


def insert_section(document: str, text: str) -> str:
    """`document` with this section replaced, or put before the flood section (or at the end)."""
    if any(line.strip() == SECTION_TITLE for line in document.splitlines()):
        return replace_section(document, text, SECTION_TITLE)
    lines = document.splitlines()
    before = next(
        (index for index, line in enumerate(lines) if line.strip() == NEXT_SECTION_TITLE), None
    )
    if before is None:
        return replace_section(document, text, SECTION_TITLE)
    head = "\n".join(lines[:before]).rstrip("\n")
    tail = "\n".join(lines[before:]).strip("\n")
    return f"{head}\n\n{text.rstrip()}\n\n{tail}\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=f"python -m {MODULE}",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--lines", type=int, default=DEFAULT_LINES)
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--logging-steps", type=int, default=DEFAULT_LOGGING_STEPS)
    parser.add_argument("--profile-entries", type=int, default=PROFILE_ENTRIES)
    parser.add_argument(
        "--quick", action="store_true", help=f"{QUICK_LINES:,} lines, one round (smoke test)"
    )
    parser.add_argument("--write-markdown", type=Path, metavar="FILE")
    # Internal: one workload in a fresh process, for its peak RSS.
    parser.add_argument("--rss-of", choices=list(WORKLOADS), help=argparse.SUPPRESS)
    parser.add_argument("--log", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rss_of is not None:
        print(f"{_rss_of(args.rss_of, args.log, args.logging_steps):.1f}")
        return 0
    if args.lines < 1 or args.rounds < 1 or args.logging_steps < 1:
        parser.error("--lines, --rounds and --logging-steps must be at least 1")
    lines, rounds = (QUICK_LINES, 1) if args.quick else (args.lines, args.rounds)
    print(f"generating {lines:,} lines, then {rounds} rounds ...", file=sys.stderr, flush=True)
    result = measure(lines, rounds, args.seed, args.logging_steps, args.profile_entries)
    text = section(result, command_line(lines, rounds, args.seed, args.logging_steps), NOTES)
    print(text)
    if args.write_markdown is not None:
        path: Path = args.write_markdown
        document = path.read_text(encoding="utf-8") if path.exists() else FILE_HEADER
        path.write_text(insert_section(document, text), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
