"""A SLURM job's state parsed from what a real SLURM 22.05 answered (captured from the test
cluster: tests/fixtures/slurm_queue/captured.json), and read through real failing commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vlm_tui.core.runs.slurm_queue import (
    UNKNOWN,
    JobState,
    QueueWatcher,
    parse_sacct,
    parse_scontrol,
    read_job_state,
)

CAPTURED = json.loads(
    (Path(__file__).parents[1] / "fixtures" / "slurm_queue" / "captured.json").read_text()
)


@pytest.mark.parametrize(
    ("capture", "state", "line"),
    [
        ("pending_held", "PENDING", "SLURM job 194393: PENDING (JobHeldUser)"),
        ("running", "RUNNING", "SLURM job 194393: RUNNING on n[1-2]"),
        ("cancelled", "CANCELLED", "SLURM job 194393: CANCELLED on n[1-2], exit 0:15"),
        ("completed", "COMPLETED", "SLURM job 194394: COMPLETED on n[1-2], exit 0:0"),
        ("failed", "FAILED", "SLURM job 194395: FAILED on n[1-2], exit 3:0"),
        ("cancelled_pending", "CANCELLED", "SLURM job 194396: CANCELLED, exit 0:0"),
    ],
)
def test_scontrol_answers_read_as_the_job_state(capture: str, state: str, line: str) -> None:
    job_id = line.split()[2].rstrip(":")
    parsed = parse_scontrol(job_id, CAPTURED[capture]["stdout"])
    assert parsed is not None
    assert parsed.state == state
    assert parsed.line() == line
    assert parsed.ended == (state not in ("PENDING", "RUNNING"))


def test_an_unknown_job_is_no_state() -> None:
    assert parse_scontrol("999999999", CAPTURED["invalid"]["stdout"]) is None


def test_sacct_lines_read_as_the_last_attempt() -> None:
    text = "77|PREEMPTED|None|n[1-2]|0:0\n77|CANCELLED by 0|None|None assigned|0:15\n"
    assert parse_sacct("77", text) == JobState("77", "CANCELLED", "", "", "0:15")
    assert parse_sacct("78", text) is None


def test_a_job_scontrol_forgot_and_no_accounting_is_unknown_with_both_reasons(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Real commands that answer as this cluster did: scontrol no longer knows the job, sacct
    # has no accounting database.
    for name in ("scontrol", "sacct"):
        capture = CAPTURED["invalid" if name == "scontrol" else "sacct"]
        script = tmp_path / name
        script.write_text(f"#!/bin/sh\necho {capture['stderr'].strip()!r} >&2\nexit 1\n")
        script.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    state = read_job_state("5")
    assert state.state == UNKNOWN
    assert state.line() == (
        "SLURM job 5: UNKNOWN (slurm_load_jobs error: Invalid job id specified;"
        " sacct: Slurm accounting storage is disabled)"
    )


def test_missing_commands_are_an_unknown_state_not_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    state = read_job_state("5")
    assert state.state == UNKNOWN
    assert "scontrol is not on PATH" in state.reason and "sacct is not on PATH" in state.reason


def test_the_watcher_reads_at_most_every_interval_and_says_each_change_once() -> None:
    answers = iter(["PENDING", "PENDING", "RUNNING"])
    reads: list[float] = []
    now = [0.0]

    def read(job_id: str) -> JobState:
        reads.append(now[0])
        return JobState(job_id, next(answers), nodes="n1")

    watcher = QueueWatcher("9", every_s=3.0, read=read, clock=lambda: now[0])
    assert watcher.poll() == "SLURM job 9: PENDING"
    now[0] = 1.0
    assert watcher.poll() is None  # not read again yet
    now[0] = 3.0
    assert watcher.poll() is None  # read, unchanged
    now[0] = 6.0
    assert watcher.poll() == "SLURM job 9: RUNNING on n1"
    assert reads == [0.0, 3.0, 6.0]
