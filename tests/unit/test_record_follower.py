"""RecordFollower: what the monitor reads of a run folder, split and bounded, never parsed."""

from __future__ import annotations

import json
from pathlib import Path

from vlm_tui.core.records.folder import RunPaths, write_json_atomic
from vlm_tui.core.runs.follow import MAX_PARTIAL_LINE, RecordFollower


def folder(tmp_path: Path) -> RunPaths:
    paths = RunPaths(tmp_path)
    write_json_atomic(paths.status, {"state": "running"})
    return paths


def append(path: Path, data: bytes) -> None:
    with path.open("ab") as sink:
        sink.write(data)


def test_lines_records_and_status_arrive_in_pieces_and_end_with_the_run(tmp_path: Path) -> None:
    paths = folder(tmp_path)
    follower = RecordFollower(paths)
    batch = follower.poll()
    assert batch.empty and not batch.ended  # nothing written yet: no files is fine

    append(paths.log, b"first line\nsecond \xc3")  # a line cut inside a UTF-8 character
    append(paths.metrics, b'{"kind": "train", "step": 1, "loss": 2.5}\n{"kind": "tr')
    batch = follower.poll()
    assert batch.lines == ["first line"]
    assert batch.metrics == [{"kind": "train", "step": 1, "loss": 2.5}]

    append(paths.log, b"\xa9 half\n 10%|#  | 1/10\r 20%|## | 2/10")
    append(paths.metrics, b'ain", "step": 2, "loss": "nan"}\nnot json\n')
    batch = follower.poll()
    assert batch.lines == ["second é half"]
    assert batch.metrics == [{"kind": "train", "step": 2, "loss": "nan"}]

    write_json_atomic(paths.status, {"state": "finished", "exit_code": 0})
    batch = follower.poll()
    # The run's end flushes the unfinished last line (a progress bar, redraws left in).
    assert batch.lines == [" 10%|#  | 1/10\r 20%|## | 2/10"]
    assert batch.ended and batch.status["exit_code"] == 0
    assert follower.poll().ended


def test_a_poll_reads_at_most_max_bytes_and_finishes_later(tmp_path: Path) -> None:
    paths = folder(tmp_path)
    append(paths.log, b"".join(b"line %d\n" % number for number in range(1000)))
    write_json_atomic(paths.status, {"state": "failed", "exit_code": 1})
    follower = RecordFollower(paths)
    seen: list[str] = []
    polls = 0
    while not follower.ended:
        batch = follower.poll(max_bytes=1024)
        seen += batch.lines
        polls += 1
    assert seen == [f"line {number}" for number in range(1000)]
    assert polls > 5


def test_an_endless_progress_bar_keeps_only_its_last_redraw(tmp_path: Path) -> None:
    paths = folder(tmp_path)
    follower = RecordFollower(paths)
    redraws = b"".join(b"\r%6d/1000000 steps" % step for step in range(20_000))
    assert len(redraws) > 4 * MAX_PARTIAL_LINE
    append(paths.log, redraws)
    assert follower.poll().lines == []
    append(paths.log, b"\n")
    (line,) = follower.poll().lines
    assert line.endswith(" 19999/1000000 steps")
    assert len(line) <= MAX_PARTIAL_LINE


def test_a_huge_line_without_redraws_is_shown_in_parts(tmp_path: Path) -> None:
    paths = folder(tmp_path)
    follower = RecordFollower(paths)
    append(paths.log, b"x" * (3 * MAX_PARTIAL_LINE) + b"\n")
    lines: list[str] = []
    for _ in range(8):
        lines += follower.poll(max_bytes=MAX_PARTIAL_LINE).lines
    assert "".join(lines) == "x" * (3 * MAX_PARTIAL_LINE)
    assert all(len(line) <= MAX_PARTIAL_LINE for line in lines)
    assert json.loads(paths.status.read_text())["state"] == "running"
