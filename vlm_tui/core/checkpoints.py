"""The checkpoints a run left in its output folder, and which one a resume starts from."""

from __future__ import annotations

import re
from pathlib import Path

# Hugging Face's Trainer names each save `checkpoint-<global step>`.
_CHECKPOINT_NAME = re.compile(r"checkpoint-(\d{1,18})", re.ASCII)
# The Trainer writes this last; a save cut short (stopped or crashed mid-save) lacks it, and
# resuming from it fails with "Can't find a valid checkpoint".
COMPLETE_MARKER = "trainer_state.json"


def checkpoint_steps(output_dir: Path) -> dict[int, Path]:
    """Every `checkpoint-N` folder under `output_dir`, by step N (empty when there are none)."""
    found: dict[int, Path] = {}
    try:
        entries = list(output_dir.iterdir())
    except OSError:
        return found
    for entry in entries:
        match = _CHECKPOINT_NAME.fullmatch(entry.name)
        if match and entry.is_dir():
            found[int(match.group(1))] = entry
    return found


def newest_checkpoint(output_dir: Path) -> tuple[int, Path] | None:
    """The complete checkpoint with the highest step: where a resume goes on from."""
    found = checkpoint_steps(output_dir)
    for step in sorted(found, reverse=True):
        if (found[step] / COMPLETE_MARKER).is_file():
            return step, found[step]
    return None
