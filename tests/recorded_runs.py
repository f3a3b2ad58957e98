"""Run folders written by hand, as the supervisor would leave them once a run has ended.

`record_output` puts a finished run's output through the supervisor's own recording step
(`supervise/recording.record_finished_log`, with the parser command.json names) into train.log,
metrics.jsonl and status.json, so screens that read those see what a real run leaves behind.
"""

from __future__ import annotations

from typing import Any

from vlm_tui.core.records.folder import RunPaths, read_json
from vlm_tui.core.supervise.recording import record_finished_log


def record_output(paths: RunPaths, output: str, status: dict[str, Any], at: float = 0.0) -> None:
    """Write `output` as train.log, its parsed records, and `status` with the parsed fields."""
    paths.log.write_text(output, encoding="utf-8")
    paths.metrics.unlink(missing_ok=True)
    paths.status.unlink(missing_ok=True)
    record_finished_log(paths, read_json(paths.command) or {}, status, wall_clock=lambda: at)
