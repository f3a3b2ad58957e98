"""Weights a graceful stop saved: axolotl's SIGINT handler writes them into output_dir and
prints nothing that names it, so the supervisor looks for weights written since the launch."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vlm_tui.core.runs.checkpoints import weights_saved_since

LAUNCH = 1_800_000_000.0


def _file(folder: Path, name: str, mtime: float) -> None:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"weights")
    os.utime(path, (mtime, mtime))


@pytest.mark.parametrize(
    "name",
    [
        "adapter_model.safetensors",
        "adapter_model.bin",
        "model.safetensors",
        "model-00001-of-00004.safetensors",
        "model.safetensors.index.json",
        "pytorch_model.bin",
    ],
)
def test_weights_written_after_the_launch_count(tmp_path: Path, name: str) -> None:
    _file(tmp_path, name, LAUNCH + 30)
    assert weights_saved_since(tmp_path, LAUNCH)


@pytest.mark.parametrize(
    "name",
    [
        "adapter_config.json",  # the pre-save at the start writes configs, not weights
        "tokenizer.json",
        "checkpoint-8/adapter_model.safetensors",  # a checkpoint, not the stop's save
        "adapter_model.safetensors.tmp",
    ],
)
def test_other_files_do_not(tmp_path: Path, name: str) -> None:
    _file(tmp_path, name, LAUNCH + 30)
    assert not weights_saved_since(tmp_path, LAUNCH)


def test_weights_older_than_the_launch_or_no_folder_do_not(tmp_path: Path) -> None:
    _file(tmp_path, "adapter_model.safetensors", LAUNCH - 60)  # a run before this one
    assert not weights_saved_since(tmp_path, LAUNCH)
    assert not weights_saved_since(tmp_path / "missing", LAUNCH)
