"""metrics.jsonl: one parsed event a line, appended by the supervisor, read by every front-end.

The one encoder (the supervisor's recorder) and the one decoder (the TUI's chart, `runs
--compare`, headless) of the file. A line is a JSON object with a `kind`; train and eval lines
carry the step and axolotl's metrics, a non-finite metric as the string "nan", "inf" or "-inf".
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from vlm_tui.core.records.folder import RunPaths
from vlm_tui.core.records.values import metric, whole

TRAIN = "train"
EVAL = "eval"
SUMMARY = "summary"
CHECKPOINT = "checkpoint"
MODEL_SAVED = "model_saved"
ERROR = "error"

# One encoder for every line: json.dumps(record, allow_nan=False) builds a new one each call.
_encode = json.JSONEncoder(allow_nan=False).encode
# How a train line starts to look in the file: a cheap filter before decoding a whole file.
_TRAIN_MARK = _encode({"kind": TRAIN})[1:-1]


def encode_line(record: Mapping[str, Any]) -> str:
    """The line metrics.jsonl holds for a record: JSON and a newline."""
    return _encode(record) + "\n"


def encode_train_lines(time: float, steps: list[int], metric_objects: list[str]) -> str:
    """The train lines of dicts already written as JSON objects of finite numbers (a bulk
    reader's): each as encode_line would write {"kind": "train", "time", "step", **metrics}."""
    head = _encode({"kind": TRAIN, "time": round(time, 3)})[:-1] + ', "step": '
    return "".join(
        f"{head}{step}, {metrics[1:]}\n" if len(metrics) > 2 else f"{head}{step}}}\n"
        for step, metrics in zip(steps, metric_objects, strict=True)
    )


def decode_line(raw: bytes | str) -> dict[str, Any] | None:
    """A line's record, or None for a torn or foreign line (a reader must never stop on one)."""
    try:
        record = json.loads(raw)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def decode_lines(lines: Iterable[bytes | str]) -> list[dict[str, Any]]:
    return [record for raw in lines if (record := decode_line(raw)) is not None]


def read_records(paths: RunPaths, kind: str | None = None) -> list[dict[str, Any]]:
    """Every record of the run (of one kind), oldest first; [] when there is no file."""
    try:
        with paths.metrics.open(encoding="utf-8", errors="replace") as stream:
            lines = (line for line in stream if kind != TRAIN or _TRAIN_MARK in line)
            records = decode_lines(lines)
    except OSError:
        return []
    return records if kind is None else [r for r in records if r.get("kind") == kind]


@dataclass(frozen=True)
class MetricPoint:
    """A train or eval line: its step, and its metrics read as numbers on demand (nan and inf
    kept; a screen under a flood of lines reads only the few it draws)."""

    kind: str
    step: int
    record: Mapping[str, Any]

    def get(self, key: str) -> float | None:
        return metric(self.record.get(key))


def metric_point(record: Mapping[str, Any]) -> MetricPoint | None:
    """The train or eval point a record holds, or None for any other record."""
    kind = record.get("kind")
    step = whole(record.get("step"))
    if (kind != TRAIN and kind != EVAL) or step is None:
        return None
    return MetricPoint(kind, step, record)
