"""The supervisor's recording step, run over a finished log: what the benchmarks and the
screens' tests record with, so neither keeps a copy of it."""

from __future__ import annotations

from pathlib import Path

from vlm_tui.core.records.folder import RunPaths
from vlm_tui.core.records.metrics_file import read_records
from vlm_tui.core.records.status_file import read_status
from vlm_tui.core.supervise.recording import STATUS_EVERY_SECONDS, LogRecording, record_finished_log

LOG = (
    " 50%|#####     | 1/2 [00:01<00:01,  1.00it/s]\r"
    "{'loss': '2.5', 'learning_rate': '0.01', 'epoch': '0.5'}\n"
    "100%|##########| 2/2 [00:02<00:00,  1.00it/s]\r"
    "{'loss': '1.5', 'learning_rate': '0.005', 'epoch': '1'}\n"
    "Saving model checkpoint to /out.invalid/checkpoint-2\n"
)


def test_a_finished_log_is_recorded_as_the_supervisor_records_it(tmp_path: Path) -> None:
    paths = RunPaths(tmp_path)
    paths.log.write_text(LOG)
    state, writes = record_finished_log(
        paths, {"logging_steps": 1}, {"state": "finished", "exit_code": 0}, lambda: 7.0
    )
    assert (state.first_loss, state.last_loss, state.step) == (2.5, 1.5, 2)
    assert writes == 2  # once at the first read, once at the end
    status = read_status(paths)
    assert status["state"] == "finished" and status["final_loss"] == 1.5
    assert status["progress"]["step"] == 2
    records = read_records(paths)
    assert [(r["kind"], r.get("step"), r["time"]) for r in records] == [
        ("train", 1, 7.0),
        ("train", 2, 7.0),
        ("checkpoint", 2, 7.0),
    ]


def test_the_status_turn_comes_at_most_once_a_period(tmp_path: Path) -> None:
    (tmp_path / "log").write_bytes(b"")
    with (tmp_path / "log").open("rb") as source:
        recording = LogRecording(source, recorder=None)  # type: ignore[arg-type]
        assert not recording.read_once()  # nothing to read: the recorder is not called
        assert recording.status_due(100.0)
        assert not recording.status_due(100.0 + STATUS_EVERY_SECONDS / 2)
        assert recording.status_due(100.0 + STATUS_EVERY_SECONDS)
