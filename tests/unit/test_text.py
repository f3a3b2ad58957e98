"""The words every view shows, from one place: the TUI and --no-ui say the same of a run."""

from __future__ import annotations

import math

from vlm_tui.core.output.output_parser import EvalMetrics, Metrics, Progress
from vlm_tui.core.output.run_state import RunState
from vlm_tui.core.text.numbers import clock, compact, duration, loss_text
from vlm_tui.core.text.run_lines import (
    WAITING,
    ProgressFigures,
    outcome_lines,
    progress_line,
    state_line,
)
from vlm_tui.core.text.table import aligned
from vlm_tui.headless import PREFIX
from vlm_tui.headless import progress_line as headless_progress_line
from vlm_tui.tui.monitor_screen import RunView


def test_numbers() -> None:
    assert clock(3725.4) == "1:02:05" and clock(None) == "?" and clock(math.inf) == "?"
    assert clock(-1) == "?"
    assert duration(12.34) == "12.3 s" and duration(61) == "0:01:01" and duration(None) == "-"
    assert compact(1234) == "1.2k" and compact(0.012345) == "0.0123" and compact(None) == "-"
    assert loss_text(0.123456) == "0.1235" and loss_text(None) == "-"


def test_a_progress_line_with_every_part_and_with_none() -> None:
    assert progress_line(None) == WAITING
    full = ProgressFigures(
        step=12,
        total=32,
        remaining_s=5.2,
        steps_per_second=2.5,
        samples_per_step=8,
        tokens_per_second=1500.0,
        loss=1.23456,
        eval_loss=1.5,
        learning_rate=0.01,
    )
    assert progress_line(full) == (
        "step 12/32 (37%)  ETA 0:00:05  2.5 it/s  20 samples/s  1.5k tokens/s"
        "  loss 1.235  eval 1.5  lr 0.01"
    )
    assert progress_line(ProgressFigures(step=3, total=None)) == "step 3/?  ETA ?"


def test_the_tui_and_headless_print_the_same_progress_words() -> None:
    progress = Progress(
        step=12, total=32, steps_per_second=2.5, elapsed_s=4.8, remaining_s=5.2, description=""
    )
    state = RunState()
    state.apply(Metrics(12, {"loss": 0.75, "learning_rate": 0.002}))
    state.apply(progress)
    view = RunView(samples_per_step=0, world_size=1, progress=progress)
    view.last_loss, view.learning_rate = state.last_loss, state.learning_rate
    headless = headless_progress_line(state)
    assert headless == f"{PREFIX} {view.progress_line()}"
    assert headless == f"{PREFIX} step 12/32 (37%)  ETA 0:00:05  2.5 it/s  loss 0.75  lr 0.002"
    # An evaluation shows in the headless line, where the TUI has its own chart for it.
    state.apply(EvalMetrics(12, {"eval_loss": 0.9}))
    assert (headless_progress_line(state) or "").endswith("loss 0.75  eval 0.9  lr 0.002")


def test_state_and_outcome_lines() -> None:
    failed = {"state": "failed", "exit_code": 1, "reason": "exit 1", "cause": "c", "fix": "f"}
    assert state_line(failed) == "failed (exit 1)" and state_line({}) == "starting"
    assert outcome_lines(failed, ended=True) == ["reason: exit 1", "cause: c", "fix: f"]
    stopping = {"state": "running", "stop_notice": "not taken"}
    assert outcome_lines(stopping, ended=False) == ["stop: not taken"]
    assert outcome_lines(stopping, ended=True) == []
    saved = {"state": "stopped", "model_saved_to": "/out.invalid"}
    assert outcome_lines(saved, ended=True) == ["model saved to /out.invalid"]
    assert outcome_lines(saved, ended=True, saved_to="/own.invalid") == [
        "model saved to /own.invalid"
    ]
    assert outcome_lines({"state": "finished", "reason": "x"}, ended=True) == []


def test_aligned_columns() -> None:
    assert aligned([("A", "BB"), ("ccc", "d")]) == ["A    BB", "ccc  d"]
    assert aligned([]) == []
