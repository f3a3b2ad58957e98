"""Run folders written by hand, as the supervisor would leave them once a run has ended.

`record_output` puts a finished run's output through the supervisor's own step (the parser
named by command.json and run_state.OutputRecorder) into train.log, metrics.jsonl and the output
part of status.json, so screens that read those see what a real run leaves behind.
"""

from __future__ import annotations

from typing import Any

from vlm_tui.core.output.run_state import OutputRecorder, RunState, parser_for_run
from vlm_tui.core.records.folder import RunPaths, read_json, write_json_atomic


def record_output(paths: RunPaths, output: str, status: dict[str, Any], at: float = 0.0) -> None:
    """Write `output` as train.log, its parsed records, and `status` with the parsed fields."""
    paths.log.write_text(output, encoding="utf-8")
    parser = parser_for_run(read_json(paths.command) or {})
    state = RunState()
    with paths.metrics.open("w", encoding="utf-8") as metrics:
        recorder = OutputRecorder(parser, state, metrics)
        recorder.feed(output.encode(), at)
        recorder.finish(at)
    write_json_atomic(paths.status, {**state.status_fields(), **status})
