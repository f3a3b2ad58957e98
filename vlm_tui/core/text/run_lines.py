"""A run's progress line and the lines that say how it stands or ended.

The TUI's monitor and `--no-ui` both print these, so a run reads the same in either.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from vlm_tui.core.text.numbers import clock, compact


@dataclass(frozen=True)
class ProgressFigures:
    """What a progress line can say; None leaves a part out."""

    step: int
    total: int | None
    remaining_s: float | None = None
    steps_per_second: float | None = None
    samples_per_step: int | None = None
    tokens_per_second: float | None = None
    loss: float | None = None
    eval_loss: float | None = None
    learning_rate: float | None = None


WAITING = "waiting for the trainer's first step"


def progress_line(figures: ProgressFigures | None) -> str:
    if figures is None:
        return WAITING
    head = f"step {figures.step}/{figures.total or '?'}"
    if figures.total:
        head += f" ({100 * figures.step // figures.total}%)"
    parts = [head, f"ETA {clock(figures.remaining_s)}"]
    rate = figures.steps_per_second
    if rate:
        parts.append(f"{rate:.3g} it/s")
        if figures.samples_per_step:
            parts.append(f"{compact(rate * figures.samples_per_step)} samples/s")
    if figures.tokens_per_second is not None:
        parts.append(f"{compact(figures.tokens_per_second)} tokens/s")
    if figures.loss is not None:
        parts.append(f"loss {figures.loss:.4g}")
    if figures.eval_loss is not None:
        parts.append(f"eval {figures.eval_loss:.4g}")
    if figures.learning_rate is not None:
        parts.append(f"lr {figures.learning_rate:.3g}")
    return "  ".join(parts)


def state_line(status: Mapping[str, object]) -> str:
    state = str(status.get("state", "starting"))
    code = status.get("exit_code")
    return state if code is None else f"{state} (exit {code})"


def outcome_lines(
    status: Mapping[str, object], *, ended: bool, saved_to: object = None
) -> list[str]:
    """Why it ended, a stop under way, the failure's cause and fix, where the model went."""
    state = str(status.get("state", "starting"))
    lines = []
    if state != "finished" and status.get("reason"):
        lines.append(f"reason: {status['reason']}")
    if status.get("stop_notice") and not ended:
        lines.append(f"stop: {status['stop_notice']}")
    if status.get("cause"):
        lines.append(f"cause: {status['cause']}")
        lines.append(f"fix: {status.get('fix', '')}")
    saved = saved_to or status.get("model_saved_to")
    if saved:
        lines.append(f"model saved to {saved}")
    return lines
