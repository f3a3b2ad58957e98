"""The checkpoints and weights a run left in its output folder, and where a resume starts."""

from __future__ import annotations

import re
from pathlib import Path

# Hugging Face's Trainer names each save `checkpoint-<global step>`.
_CHECKPOINT_NAME = re.compile(r"checkpoint-(\d{1,18})", re.ASCII)
# The Trainer writes this last; a save cut short (stopped or crashed mid-save) lacks it, and
# resuming from it fails with "Can't find a valid checkpoint".
COMPLETE_MARKER = "trainer_state.json"
# What save_pretrained writes at the top of output_dir: an adapter, or a whole model (sharded
# ones get an index and numbered files).
_WEIGHTS_NAME = re.compile(
    r"(adapter_model|model|pytorch_model)(-\d+-of-\d+)?\.(safetensors|bin)(\.index\.json)?",
    re.ASCII,
)


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


def weights_saved_since(output_dir: Path, since: float) -> bool:
    """Whether weights at the top of `output_dir` were written at or after `since` (epoch s):
    axolotl's SIGINT handler saves the model there and prints nothing that says where."""
    try:
        entries = list(output_dir.iterdir())
    except OSError:
        return False
    for entry in entries:
        if not _WEIGHTS_NAME.fullmatch(entry.name):
            continue
        try:
            if entry.is_file() and entry.stat().st_mtime >= since:
                return True
        except OSError:
            continue
    return False
