"""The supervisor's recording step: train.log in 1 MiB reads, each through the parser into the
run state and metrics.jsonl; status.json's output fields rewritten at most once a second.

The supervisor runs it live beside the training (`Supervisor._follow`, which adds its watches
between reads); `record_finished_log` runs the same step over a log that is already complete,
for the benchmarks and the screens' tests, so neither keeps a copy of it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from vlm_tui.core.output.chunk_reader import ChunkRecorder
from vlm_tui.core.output.run_state import OutputRecorder, RunState, parser_for_run
from vlm_tui.core.records.folder import RunPaths
from vlm_tui.core.records.status_file import StatusWriter

READ_CHUNK = 1 << 20
STATUS_EVERY_SECONDS = 1.0


class LogRecording:
    """One run's log as it is read: each read recorded, the status's turn kept."""

    def __init__(
        self,
        source: BinaryIO,
        recorder: OutputRecorder,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.source = source
        self.recorder = recorder
        self.wall_clock = wall_clock
        self._next_status = 0.0

    def read_once(self) -> bool:
        """Read what the log holds now (up to READ_CHUNK) and record it; False when nothing."""
        chunk = self.source.read(READ_CHUNK)
        if chunk:
            self.recorder.feed(chunk, self.wall_clock())
        return bool(chunk)

    def status_due(self, now: float) -> bool:
        """Whether status.json's turn has come (at most once a STATUS_EVERY_SECONDS)."""
        if now < self._next_status:
            return False
        self._next_status = now + STATUS_EVERY_SECONDS
        return True

    def finish(self) -> None:
        self.recorder.finish(self.wall_clock())


def record_finished_log(
    paths: RunPaths,
    command: Mapping[str, Any],
    end_status: Mapping[str, Any],
    wall_clock: Callable[[], float] = time.time,
    log: Path | None = None,
    recorder_type: type[OutputRecorder] = ChunkRecorder,
) -> tuple[RunState, int]:
    """Record a complete train.log (or `log`, read in place) into the run folder as the
    supervisor would have, then status.json's end (`end_status` over the output's fields).
    The state, and how many times status.json was written. `recorder_type`: OutputRecorder
    records through the reference parser line by line (the benchmark's before)."""
    state = RunState()
    status = StatusWriter(paths.status)
    writes = 0
    with (
        (log or paths.log).open("rb") as source,
        paths.metrics.open("a", encoding="utf-8") as metrics,
    ):
        recorder = recorder_type(parser_for_run(dict(command)), state, metrics)
        recording = LogRecording(source, recorder, wall_clock)
        while recording.read_once():
            if recording.status_due(time.monotonic()):
                status.update(**state.status_fields())
                writes += 1
        recording.finish()
    status.update(**state.status_fields(), **end_status)
    return state, writes + 1
