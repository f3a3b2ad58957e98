"""A checkpoint's trainer_state.json (Hugging Face's Trainer writes it): the losses it logged."""

from __future__ import annotations

from pathlib import Path

from vlm_tui.core.records.folder import read_json
from vlm_tui.core.records.values import finite, whole

TRAINER_STATE = "trainer_state.json"


def loss_at(checkpoint: Path, step: int) -> float | None:
    """The training loss logged last at or before `step`; None when none is readable."""
    state = read_json(checkpoint / TRAINER_STATE)
    history = state.get("log_history") if state else None
    if not isinstance(history, list):
        return None
    losses = [
        entry["loss"]
        for entry in history
        if isinstance(entry, dict)
        and "loss" in entry
        and (logged := whole(entry.get("step"))) is not None
        and logged <= step
    ]
    return finite(losses[-1]) if losses else None
