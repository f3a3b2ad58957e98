"""Smoke test of the output-throughput benchmark: its whole code path runs on a few thousand
lines; no timing is judged.

What is checked is what the figures stand on: the generated log holds what it claims, the
supervisor's pipeline recorded every metric of it, every workload was timed, and the section
lands in BENCHMARKS.md between the start-up and flood sections without touching them.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest

from bench.parser_throughput import (
    BEFORE,
    EVAL_EVERY_STEPS,
    LIMIT,
    SAVE_EVERY_STEPS,
    SECTION_TITLE,
    SPLIT,
    TRACEBACK_EVERY_STEPS,
    VLM_TUI,
    Measurement,
    count_lines,
    insert_section,
    main,
    measure,
    record_run,
    section,
    training_log,
)

# One worker runs this module: its tests share one measurement.
pytestmark = pytest.mark.xdist_group("parser-throughput")

# Enough steps for one traceback pair, a few evals and saves.
LINES = 9_000


@pytest.fixture(scope="module")
def result() -> Measurement:
    return measure(LINES, rounds=2, profile_entries=5)


def test_the_log_holds_what_it_claims_and_reads_as_counted(tmp_path: Path) -> None:
    log = training_log(3_000, seed=3, logging_steps=5)
    assert log == training_log(3_000, seed=3, logging_steps=5)  # deterministic
    path = tmp_path / "train.log"
    path.write_text(log.text, encoding="utf-8", newline="")
    with path.open(encoding="utf-8") as source:
        assert sum(1 for _ in source) == count_lines(log.text) == log.lines
    assert log.lines >= 3_000
    assert sum(log.ends.values()) == log.lines
    assert log.items["metric dicts"] == log.steps // 5 + log.steps // EVAL_EVERY_STEPS + 1
    # Redraws of the bar are most lines, as in a real run.
    assert log.ends["bar redraws"] > log.lines / 2
    assert log.text.count("\r") > log.text.count("\n") * 2


def test_every_workload_is_timed_each_round(result: Measurement) -> None:
    for workload in (LIMIT, VLM_TUI, BEFORE, SPLIT):
        assert len(result.seconds[workload]) == len(result.cpu_seconds[workload]) == 2
        assert all(seconds > 0 for seconds in result.seconds[workload])
        assert result.peak_rss_mb[workload] > 0
    assert result.ratio > 0 and result.cpu_ratio > 0 and result.speed_up > 0
    # The reference recorder, run beside it, wrote the same records and status.json.
    assert result.same_as_before
    assert 0 < len(result.profile) <= 5
    assert all(row.calls > 0 and 0 <= row.share <= 1 for row in result.profile)


def test_the_pipeline_recorded_every_metric_of_the_log(result: Measurement) -> None:
    steps = result.log.steps
    assert steps > TRACEBACK_EVERY_STEPS
    assert result.records == {
        "train": steps // result.log.logging_steps,
        "eval": steps // EVAL_EVERY_STEPS,
        "summary": 1,
        "checkpoint": steps // SAVE_EVERY_STEPS,
        "error": 2 * (steps // TRACEBACK_EVERY_STEPS),
        "model_saved": 1,
    }
    progress = result.status["progress"]
    assert progress["step"] == steps and progress["total"] >= steps
    assert result.status["steps"] == steps // result.log.logging_steps * result.log.logging_steps
    assert result.status["state"] == "finished" and result.status["summary"]["train_runtime"]
    assert result.status_writes >= 2


def test_metrics_records_follow_the_steps(tmp_path: Path) -> None:
    log = training_log(2_000, logging_steps=4)
    path = tmp_path / "train.log"
    path.write_text(log.text, encoding="utf-8", newline="")
    recorded = record_run(path, tmp_path / "run", logging_steps=4)
    lines = recorded.paths.metrics.read_text(encoding="utf-8").splitlines()
    train = [json.loads(line) for line in lines if '"kind": "train"' in line]
    assert [record["step"] for record in train] == list(range(4, log.steps + 1, 4))
    assert all(0.2 < record["loss"] < 3 for record in train)


def test_the_section_has_every_figure(result: Measurement) -> None:
    text = section(result, "python -m bench.parser_throughput --lines 9000 --rounds 2")
    assert text.startswith(f"{SECTION_TITLE}\n")
    for expected in (
        "`python -m bench.parser_throughput --lines 9000 --rounds 2`. Machine:",
        "| bar redraws |",
        "| limit: bare `for line in f: pass`, text mode |",
        "| vlm-tui: chunk reader, RunState, metrics.jsonl, status.json |",
        "| before: every line through the parser (the reference), the same records |",
        "the same records and `status.json`",
        "Target (at least 0.5x the limit): **",
        "### Where the time goes",
    ):
        assert expected in text


DOCUMENT = "# Benchmarks\n\nintro\n\n## Start-up\n\nfigures\n\n## UI under a flood\n\nmore\n"


def test_the_section_goes_between_start_up_and_the_flood_and_is_replaced_later() -> None:
    first = insert_section(DOCUMENT, f"{SECTION_TITLE}\n\nold figures\n")
    titles = [line for line in first.splitlines() if line.startswith("## ")]
    assert titles == ["## Start-up", SECTION_TITLE, "## UI under a flood"]
    second = insert_section(first, f"{SECTION_TITLE}\n\nnew figures\n")
    assert "old figures" not in second and "new figures" in second
    assert second.replace("new figures", "old figures") == first
    assert "figures\n" in second and "more\n" in second
    # No flood section yet: the section goes at the end.
    assert insert_section("# Benchmarks\n", f"{SECTION_TITLE}\n\nx\n").endswith("x\n")


def test_the_command_line_writes_the_section() -> None:
    with tempfile.TemporaryDirectory() as folder:
        target = Path(folder) / "BENCHMARKS.md"
        target.write_text(DOCUMENT, encoding="utf-8")
        assert main(["--quick", "--write-markdown", str(target)]) == 0
        written = target.read_text(encoding="utf-8")
    assert written.startswith("# Benchmarks\n\nintro\n\n## Start-up\n\nfigures\n\n")
    assert SECTION_TITLE in written and written.endswith("## UI under a flood\n\nmore\n")
    with pytest.raises(SystemExit):
        main(["--rounds", "0"])
