"""The dataset step of a launch: check every local dataset, then give the run its own copy.

Before anything is created, each local `chat_template` dataset of the config is read in full
(dataset_check) into a scratch file; a dataset with problems refuses the launch (exit 2) unless
the user asked to skip bad rows. Once the run folder exists the converted rows move into it
(`dataset.jsonl`, `dataset-2.jsonl`, ...) and the config names them: what the training reads is
in the run folder, with absolute image paths, the same for every node on shared storage. Hub
datasets and other dataset types are left to axolotl.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlm_tui.core.data.dataset_check import DataReport, check_dataset
from vlm_tui.core.data.dataset_rows import DatasetError
from vlm_tui.core.errors import UserError

PROBLEMS_NAME = "dataset-problems.txt"


@dataclass(frozen=True)
class CheckedDataset:
    key: str  # datasets or test_datasets
    index: int  # in that list
    report: DataReport
    scratch: Path  # the converted rows, until they move into the run folder

    @property
    def is_first_training(self) -> bool:
        return self.key == "datasets" and self.index == 0


@dataclass
class PreparedData:
    datasets: list[CheckedDataset] = field(default_factory=list)
    # Tokens per training row (TokenLengths.record), when they were counted.
    token_lengths: dict[str, int] | None = None

    def training(self) -> CheckedDataset | None:
        """The first training dataset: the one whose tokens are counted and recorded."""
        return next((one for one in self.datasets if one.is_first_training), None)

    def training_report(self) -> DataReport | None:
        training = self.training()
        return None if training is None else training.report

    def training_rows(self) -> Path | None:
        """The converted rows of the first training dataset, while they are still scratch."""
        training = self.training()
        return training.scratch if training and training.scratch.exists() else None

    def discard(self) -> None:
        """Drop the scratch files (a launch refused after the check)."""
        for dataset in self.datasets:
            dataset.scratch.unlink(missing_ok=True)

    def place(self, run_root: Path, config: dict[str, Any]) -> dict[str, Any]:
        """Move the converted rows into the run folder; the config naming them (a copy)."""
        placed = {
            key: [dict(entry) for entry in config.get(key) or []]
            for key in DATASET_KEYS
            if key in config
        }
        problems: list[str] = []
        for dataset in self.datasets:
            stem = "dataset" if dataset.key == "datasets" else "eval-dataset"
            name = f"{stem}.jsonl" if dataset.index == 0 else f"{stem}-{dataset.index + 1}.jsonl"
            target = run_root / name
            shutil.move(str(dataset.scratch), target)
            placed[dataset.key][dataset.index].update(
                path=str(target), ds_type="json", type="chat_template", field_messages="messages"
            )
            problems += [
                f"{dataset.report.source}: {issue.line()}" for issue in dataset.report.problems
            ]
        if problems:
            (run_root / PROBLEMS_NAME).write_text("\n".join(problems) + "\n", encoding="utf-8")
        return {**config, **placed} if self.datasets else config


# The config keys that list datasets: what the training reads, and what it is evaluated on.
DATASET_KEYS = ("datasets", "test_datasets")


def local_chat_datasets(config: dict[str, Any]) -> list[tuple[str, int, Path]]:
    """The config's datasets vlm-tui checks (key, index, path): local files or folders read as
    chat_template."""
    found = []
    for key in DATASET_KEYS:
        for index, entry in enumerate(config.get(key) or []):
            if not isinstance(entry, dict) or entry.get("type") != "chat_template":
                continue
            path = entry.get("path")
            if isinstance(path, str) and os.path.isabs(path) and os.path.exists(path):
                found.append((key, index, Path(path)))
    return found


def prepare_datasets(
    config: dict[str, Any],
    workdir: Path,
    *,
    skip_bad_rows: bool,
    report: Callable[[str], None] = lambda _text: None,
) -> PreparedData:
    """Check and convert each local dataset; UserError (naming the first bad row) on problems,
    with nothing left behind."""
    prepared = PreparedData()
    try:
        for key, index, path in local_chat_datasets(config):
            report(f"checking the dataset {path}")
            handle, scratch = tempfile.mkstemp(prefix="vlm-tui-dataset-", suffix=".jsonl")
            prepared.datasets.append(CheckedDataset(key, index, DataReport(path), Path(scratch)))
            with os.fdopen(handle, "w", encoding="utf-8") as sink:
                try:
                    checked = check_dataset(path, workdir, write_to=sink)
                except DatasetError as error:
                    field = "dataset_name" if key == "datasets" else "eval_dataset"
                    raise UserError(field, str(error)) from None
            prepared.datasets[-1] = CheckedDataset(key, index, checked, Path(scratch))
            field = "dataset_name" if key == "datasets" else "eval_dataset"
            report(f"{field}: {checked.summary_line()}")
            if checked.good_rows == 0 or (checked.problems and not skip_bad_rows):
                raise UserError(field, checked.refusal())
            if checked.problems:
                report(
                    f"{field}: --skip_bad_rows: training on {checked.good_rows} rows, leaving out"
                    f" {len(checked.problems)} (listed in the run folder's {PROBLEMS_NAME})"
                )
    except BaseException:
        prepared.discard()
        raise
    return prepared
