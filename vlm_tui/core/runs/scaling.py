"""Run history and scaling: each finished run's throughput and its speed-up over one process.

A run's speed-up is its samples/s divided by the best samples/s of a finished 1-process run of
the same config. samples/s, not wall time: every process takes its own micro batch each step,
so more processes train a bigger global batch in fewer steps, and only samples/s (the trainer's
own `train_samples_per_second`, counted over the whole dataset) means the same thing for both.
Next to it stands what the multi-node guide expects for that many GPUs.

Only reads run folders, like the rest of the run index.
"""

from __future__ import annotations

import hashlib
import json
import math
import statistics
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import yaml

from vlm_tui.core.records.command_file import read_command, recorded_topology
from vlm_tui.core.records.folder import RunPaths
from vlm_tui.core.records.metrics_file import TRAIN, read_records
from vlm_tui.core.records.status_file import read_status
from vlm_tui.core.records.values import finite
from vlm_tui.core.runs.run_index import (
    GONE,
    by_age,
    find_run,
    run_folders,
    started_elsewhere,
    summarise,
)
from vlm_tui.core.runs.user_index import IndexedRun
from vlm_tui.core.text.numbers import compact, duration, loss_text
from vlm_tui.core.text.table import aligned
from vlm_tui.core.training_plugins import VLM_TUI_PLUGINS

# ---- what the guide promises ------------------------------------------------------------

GUIDE_SOURCE = 'the multi-node training guide ("Performance Expectations", "Scaling Efficiency")'
# Its table: GPUs -> expected speed over one GPU.
GUIDE_SPEEDUPS: Mapping[int, float] = {1: 1.0, 4: 3.5, 8: 7.0, 16: 14.0}
# Its "Verify Speedup" example says 6.7x for 8 GPUs where the table says ~7x.
GUIDE_EXAMPLE_SPEEDUPS: Mapping[int, float] = {4: 3.5, 8: 6.7}
# Every row of the table past one GPU is the same fraction of linear: 3.5/4 = 7/8 = 14/16.
GUIDE_EFFICIENCY = statistics.fmean(
    speedup / gpus for gpus, speedup in GUIDE_SPEEDUPS.items() if gpus > 1
)


def _times(value: float) -> str:
    return f"{value:g}x"


def guide_expectation(processes: int | None) -> str:
    """What the guide expects of `processes` GPUs, saying so when it is derived, not written."""
    if processes is None:
        return "-"
    if processes == 1:
        return "1x (baseline)"
    expected = GUIDE_SPEEDUPS.get(processes)
    if expected is not None:
        text = f"~{_times(expected)}"
        example = GUIDE_EXAMPLE_SPEEDUPS.get(processes)
        return text if example in (None, expected) else f"{text} (its example: {_times(example)})"
    derived = round(processes * GUIDE_EFFICIENCY, 2)
    return f"~{_times(derived)} (at {GUIDE_EFFICIENCY:.1%} efficiency)"


# ---- what a run recorded ----------------------------------------------------------------

# Keys vlm-tui writes differently for each run or node of one config: they say where a run
# writes, not what it trains.
PER_RUN_KEYS = ("output_dir", "resume_from_checkpoint")
# Points kept of a loss curve: far more than any chart here draws.
KEEP_LOSS_POINTS = 2000


def config_identity(
    config_text: str, dataset_sources: Mapping[str, str] | None = None
) -> str | None:
    """A short hash of an axolotl config, less what vlm-tui sets per run or per node; None
    when the text is not a YAML mapping. `dataset_sources` maps a run's own copy of a dataset
    (in its run folder) to the dataset it was made from, which is what identifies it."""
    try:
        config = yaml.safe_load(config_text)
    except yaml.YAMLError:
        return None
    if not isinstance(config, dict):
        return None
    kept = {key: value for key, value in config.items() if key not in PER_RUN_KEYS}
    if dataset_sources and isinstance(kept.get("datasets"), list):
        kept["datasets"] = [
            {**entry, "path": dataset_sources.get(str(entry.get("path")), entry.get("path"))}
            if isinstance(entry, dict)
            else entry
            for entry in kept["datasets"]
        ]
    # vlm-tui's own: the CPU placement comes with width (the same config trained wider), and the
    # graceful stop came with a later version.
    plugins = kept.pop("plugins", None)
    if isinstance(plugins, list):
        plugins = [plugin for plugin in plugins if plugin not in VLM_TUI_PLUGINS]
    if plugins:
        kept["plugins"] = plugins
    canonical = json.dumps(kept, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:8]


@dataclass(frozen=True)
class LossPoint:
    step: int
    epoch: float | None
    loss: float


@dataclass(frozen=True)
class RunThroughput:
    """One run's figures for the scaling report."""

    paths: RunPaths
    state: str
    processes: int | None
    # A multi-node run's other nodes (and a launcher's other ranks) keep folders of their own;
    # the run's figures are in node 0's.
    other_node: bool
    config_id: str | None
    samples_per_second: float | None
    steps_per_second: float | None
    train_runtime_s: float | None
    tokens_per_second: float | None
    final_loss: float | None
    losses: tuple[LossPoint, ...]
    best_eval_loss: float | None = None

    @property
    def finished(self) -> bool:
        return self.state == "finished"


def _loss_points(records: Iterable[dict[str, Any]]) -> tuple[LossPoint, ...]:
    points = []
    for record in records:
        loss, step = finite(record.get("loss")), record.get("step")
        if loss is not None and isinstance(step, int) and not isinstance(step, bool):
            points.append(LossPoint(step, finite(record.get("epoch")), loss))
    if len(points) > KEEP_LOSS_POINTS:
        stride = math.ceil(len(points) / KEEP_LOSS_POINTS)
        points = [*points[:-1:stride], points[-1]]
    return tuple(points)


def _trainable_tokens(records: Sequence[dict[str, Any]]) -> float | None:
    """axolotl's running count of trainable tokens, summed over every process."""
    for record in reversed(records):
        count = finite(record.get("tokens/trainable"))
        if count is not None:
            return count
    return None


def recorded_dataset_sources(status: Mapping[str, Any]) -> dict[str, str]:
    """The run's dataset copies and what each was made from, as status.json records them."""
    found = {}
    for entry in status.get("datasets") or []:
        if isinstance(entry, dict) and isinstance(entry.get("copy"), str):
            found[entry["copy"]] = str(entry.get("source"))
    return found


def read_run(paths: RunPaths) -> RunThroughput:
    """A run folder's figures; whatever it lacks reads as None (a reader never raises)."""
    status = read_status(paths)
    command = read_command(paths) or {}
    topology = recorded_topology(command)
    summary = status.get("summary")
    summary = summary if isinstance(summary, dict) else {}
    try:
        config_id = config_identity(
            paths.config.read_text(encoding="utf-8"), recorded_dataset_sources(status)
        )
    except (OSError, UnicodeDecodeError):
        config_id = None
    records = read_records(paths, TRAIN)
    runtime = finite(summary.get("train_runtime"))
    tokens = _trainable_tokens(records)
    return RunThroughput(
        paths=paths,
        state=summarise(paths).state,
        processes=topology.world_size,
        other_node=topology.node_rank > 0 or topology.global_rank > 0,
        config_id=config_id,
        samples_per_second=finite(summary.get("train_samples_per_second")),
        steps_per_second=finite(summary.get("train_steps_per_second")),
        train_runtime_s=runtime,
        # Over the same train_runtime as samples/s: one logging window's figure (the monitor's)
        # can catch a checkpoint save and read half the rest.
        tokens_per_second=tokens / runtime if tokens is not None and runtime else None,
        final_loss=finite(status.get("final_loss")),
        losses=_loss_points(records),
        best_eval_loss=finite(status.get("best_eval_loss")),
    )


# ---- the comparison ---------------------------------------------------------------------


@dataclass(frozen=True)
class ComparedRun:
    run: RunThroughput
    baseline: RunThroughput | None
    speedup: float | None

    @property
    def speedup_text(self) -> str:
        run = self.run
        if not run.finished:
            return f"- ({run.state})"
        if run.samples_per_second is None:
            return "- (no summary)"
        if self.baseline is None or self.speedup is None:
            return "no 1-process baseline"
        if self.baseline.paths == run.paths:
            return "1.0x (baseline)"
        return f"{self.speedup:.1f}x"

    @property
    def guide_text(self) -> str:
        return guide_expectation(self.run.processes)


def baseline_for(run: RunThroughput, candidates: Iterable[RunThroughput]) -> RunThroughput | None:
    """The fastest finished 1-process run of `run`'s config, by samples/s."""
    if run.config_id is None:
        return None
    same = [
        one
        for one in candidates
        if one.finished
        and one.processes == 1
        and not one.other_node
        and one.config_id == run.config_id
        and one.samples_per_second
    ]
    return max(same, key=lambda one: one.samples_per_second or 0.0, default=None)


def compare(
    runs: Sequence[RunThroughput], candidates: Sequence[RunThroughput]
) -> list[ComparedRun]:
    """Each of `runs` with its speed-up over its baseline, found among `candidates` and `runs`."""
    pool = [*candidates, *(run for run in runs if run not in candidates)]
    compared = []
    for run in runs:
        baseline = baseline_for(run, pool)
        speedup = None
        if baseline is not None and run.finished and run.samples_per_second:
            assert baseline.samples_per_second  # a baseline always has one
            speedup = run.samples_per_second / baseline.samples_per_second
        compared.append(ComparedRun(run, baseline, speedup))
    return compared


@dataclass(frozen=True)
class Selection:
    compared: list[ComparedRun]
    # One line each for a named run left out, and why.
    skipped: list[str]
    # Indexed runs started elsewhere whose folder is gone: nothing to compare, but listed.
    gone: list[RunPaths] = field(default_factory=list)


def select_and_compare(
    runs_root: Path, queries: Sequence[str] = (), indexed: Sequence[IndexedRun] = ()
) -> Selection:
    """The runs `queries` name (as `find_run` resolves them), or every finished run under
    `runs_root` and among the `indexed` runs started elsewhere; each compared with the 1-process
    runs of its config recorded there."""
    elsewhere = started_elsewhere(runs_root, indexed)
    present = by_age([*run_folders(runs_root), *(one for one in elsewhere if one.holds_run)])
    candidates = [read_run(paths) for paths in present]
    skipped = []
    if not queries:
        chosen = [run for run in candidates if run.finished and not run.other_node]
    else:
        by_root = {run.paths.root.resolve(): run for run in candidates}
        chosen = []
        for query in queries:
            paths = find_run(runs_root, query, indexed)
            run = by_root.get(paths.root.resolve()) or read_run(paths)
            if run.other_node:
                skipped.append(
                    f"{paths.run_id}: another node's part of a multi-node run;"
                    " its figures are in node 0's run folder"
                )
            elif run not in chosen:
                chosen.append(run)
    gone = [paths for paths in elsewhere if not paths.holds_run]
    return Selection(compare(chosen, candidates), skipped, gone)


# ---- as text ----------------------------------------------------------------------------

COLUMNS = (
    "RUN",
    "CONFIG",
    "PROCS",
    "SAMPLES/S",
    "TOKENS/S",
    "RUNTIME",
    "LOSS",
    "EVAL LOSS",
    "SPEED-UP",
    "GUIDE EXPECTS",
)
NOTE_WIDTH = 100
NOTE_LINES = (
    "speed-up: samples/s over the best finished 1-process run of the same config (CONFIG:"
    " config.yml less output_dir, resume_from_checkpoint and vlm-tui's own plugins).",
    "Each process takes its own micro batch every step, so more processes train a bigger global"
    " batch in fewer steps: samples/s is compared, not steps or wall time.",
    "samples/s and runtime: the trainer's own summary; tokens/s: axolotl's trainable tokens"
    " over all processes / runtime; loss: the last logged; eval loss: the lowest evaluated.",
    f"GUIDE EXPECTS: {GUIDE_SOURCE}, by GPUs (one process each): 1 GPU 1x, 4 ~3.5x, 8 ~7x"
    " (its worked example: 6.7x), 16 ~14x; other counts at the table's"
    f" {GUIDE_EFFICIENCY:.1%} efficiency (3.5/4 = 7/8 = 14/16), derived here, not in the guide.",
)


def row_cells(one: ComparedRun) -> tuple[str, ...]:
    run = one.run
    return (
        run.paths.run_id,
        run.config_id or "?",
        "?" if run.processes is None else str(run.processes),
        compact(run.samples_per_second),
        compact(run.tokens_per_second),
        duration(run.train_runtime_s),
        loss_text(run.final_loss),
        loss_text(run.best_eval_loss),
        one.speedup_text,
        one.guide_text,
    )


def gone_cells(paths: RunPaths) -> tuple[str, ...]:
    """A row for an indexed run whose folder is gone: its name, and "gone" as its speed-up."""
    return (paths.run_id, *["-"] * (len(COLUMNS) - 3), f"- ({GONE})", "-")


def table_lines(compared: Sequence[ComparedRun]) -> list[str]:
    return aligned([COLUMNS, *(row_cells(one) for one in compared)])


SPARK_LEVELS = "▁▂▃▄▅▆▇█"


def _resampled(
    xs: Sequence[float], ys: Sequence[float], edges: Sequence[float]
) -> list[float | None]:
    """One value a column: the mean of the points inside it, else the line between its
    neighbours at its centre; None outside the run's first and last point."""
    values: list[float | None] = []
    last_column = len(edges) - 2
    for column, (low, high) in enumerate(pairwise(edges)):
        inside = [
            y
            for x, y in zip(xs, ys, strict=True)
            if low <= x < high or (column == last_column and x == high)
        ]
        if inside:
            values.append(statistics.fmean(inside))
            continue
        centre = (low + high) / 2
        if not xs[0] <= centre <= xs[-1]:
            values.append(None)
            continue
        after = next(index for index, x in enumerate(xs) if x >= centre)
        x0, x1, y0, y1 = xs[after - 1], xs[after], ys[after - 1], ys[after]
        values.append(y0 + (y1 - y0) * (centre - x0) / (x1 - x0) if x1 > x0 else y1)
    return values


def loss_curve_lines(runs: Sequence[RunThroughput], width: int = 40) -> list[str]:
    """The loss curves side by side: a row a run on one shared x axis (epochs when every point
    has one, else steps) and one shared y scale (log when every loss is positive)."""
    curves = [run for run in runs if run.losses]
    if not curves:
        return ["no losses recorded"]
    by_epoch = all(point.epoch is not None for run in curves for point in run.losses)
    log_scale = all(point.loss > 0 for run in curves for point in run.losses)

    def x_of(point: LossPoint) -> float:
        return float(point.epoch if by_epoch and point.epoch is not None else point.step)

    def y_of(loss: float) -> float:
        return math.log10(loss) if log_scale else loss

    x_low = min(x_of(point) for run in curves for point in run.losses)
    x_high = max(x_of(point) for run in curves for point in run.losses)
    span = (x_high - x_low) or 1.0
    edges = [x_low + span * column / width for column in range(width + 1)]
    losses = [point.loss for run in curves for point in run.losses]
    y_low, y_high = y_of(min(losses)), y_of(max(losses))
    axis = "epoch" if by_epoch else "step"
    scale = "log" if log_scale else "linear"
    lines = [
        f"loss by {axis}, {x_low:g} to {x_high:g}, one {scale} scale for all:"
        f" {SPARK_LEVELS[0]} {min(losses):.3g} .. {SPARK_LEVELS[-1]} {max(losses):.3g}"
    ]
    name_width = max(len(run.paths.run_id) for run in curves)
    for run in curves:
        ordered = sorted(run.losses, key=x_of)
        xs = [x_of(point) for point in ordered]
        ys = [y_of(point.loss) for point in ordered]
        cells = []
        for value in _resampled(xs, ys, edges):
            if value is None:
                cells.append(" ")
            elif y_high == y_low:
                cells.append(SPARK_LEVELS[len(SPARK_LEVELS) // 2])
            else:
                level = round((value - y_low) / (y_high - y_low) * (len(SPARK_LEVELS) - 1))
                cells.append(SPARK_LEVELS[level])
        first, last = run.losses[0].loss, run.losses[-1].loss
        lowest = min(point.loss for point in run.losses)
        lines.append(
            f"{run.paths.run_id.ljust(name_width)}  {''.join(cells)}"
            f"  {first:.3g} -> {last:.3g}, min {lowest:.3g}"
        )
    return lines


def report_lines(selection: Selection) -> list[str]:
    """`vlm-tui runs --compare`: the table, the loss curves, and how the speed-up is found."""
    lines = [f"skipped {line}" for line in selection.skipped]
    if not selection.compared:
        return [*lines, "no finished runs to compare"]
    lines += table_lines(selection.compared)
    lines += ["", *loss_curve_lines([one.run for one in selection.compared])]
    lines += ["", *(wrapped for note in NOTE_LINES for wrapped in textwrap.wrap(note, NOTE_WIDTH))]
    return lines
