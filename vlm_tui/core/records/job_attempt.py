"""A later attempt of a scheduler's job (requeued, re-submitted) recording into the same run folder.

The attempt goes on from the newest complete checkpoint, step N. What the earlier attempt
recorded past N was trained again from N, so the run's metrics.jsonl keeps only its records up
to N and the new attempt appends after them: every step is in it once. The earlier attempt's
whole file stays beside it (metrics-attempt<k>.jsonl, never overwritten), and so does its
train.log (train-attempt<k>.log): the new supervisor records metrics from every line of
train.log, and would count the earlier attempt's steps again after N. The stop markers of an
earlier graceful stop are the earlier training's, and would stop the new one at its first
step: they go.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from vlm_tui.core.records.folder import RunPaths
from vlm_tui.core.records.metrics_file import decode_line

EARLIER_METRICS = "metrics-attempt{number}.jsonl"
EARLIER_LOG = "train-attempt{number}.log"


def _earlier_attempt_number(paths: RunPaths) -> int:
    """The first k for which the run folder holds neither metrics-attempt<k> nor
    train-attempt<k>."""
    number = 1
    while any(
        (paths.root / name.format(number=number)).exists()
        for name in (EARLIER_METRICS, EARLIER_LOG)
    ):
        number += 1
    return number


def _kept(raw: bytes, start_step: int) -> bool:
    record = decode_line(raw)
    if record is None:
        return False
    step = record.get("step")
    return isinstance(step, int) and not isinstance(step, bool) and step <= start_step


def continue_in_folder(paths: RunPaths, start_step: int) -> None:
    """Ready `paths` (holding an earlier attempt's run) for an attempt going on from step
    `start_step` (0: from the start)."""
    for marker in (paths.stop_request, paths.stop_armed, paths.stop_taken):
        marker.unlink(missing_ok=True)
    number = _earlier_attempt_number(paths)
    with contextlib.suppress(FileNotFoundError):
        paths.log.rename(paths.root / EARLIER_LOG.format(number=number))
    try:
        lines = paths.metrics.read_bytes().splitlines(keepends=True)
    except FileNotFoundError:
        return
    kept = b"".join(line for line in lines if line.endswith(b"\n") and _kept(line, start_step))
    shutil.copyfile(paths.metrics, paths.root / EARLIER_METRICS.format(number=number))
    # Written beside and renamed over: a reader sees the earlier file or this one, never half.
    handle, temporary = tempfile.mkstemp(dir=paths.root, prefix=".metrics.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(kept)
        os.replace(temporary, paths.metrics)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
