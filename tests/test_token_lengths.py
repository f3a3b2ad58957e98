"""Tokens per row against sequence_len: the distribution said, long rows warned with a fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import clean_environ, only_run, run_cli
from vlm_tui.core.token_lengths import TokenLengths, suggested_sequence_len


def test_the_distribution_line_says_what_was_counted() -> None:
    every = TokenLengths(rows=5, lengths=(10, 20, 30, 40, 500))
    assert every.line() == (
        "tokens per row (images included, every row of 5): min 10, median 30, 95% 500, max 500"
    )
    sample = TokenLengths(rows=100_000, lengths=tuple(range(1, 2001)))
    assert "an even sample of 2000 of 100000" in sample.line()


def test_rows_over_sequence_len_are_a_warning_with_the_value_that_covers_them() -> None:
    lengths = TokenLengths(rows=4, lengths=(100, 120, 300, 513))
    assert lengths.warning(1024) is None
    warning = lengths.warning(256)
    assert warning is not None
    assert warning.startswith("warning: 2 of 4 rows counted are longer than sequence_len 256")
    assert "up to 513 tokens" in warning and "--sequence_len 576 covers them" in warning
    assert lengths.record(256) == {
        "counted": 4,
        "min": 100,
        "median": 210,
        "p95": 513,
        "max": 513,
        "over_sequence_len": 2,
    }


@pytest.mark.parametrize(("longest", "covering"), [(1, 64), (64, 64), (65, 128), (513, 576)])
def test_the_suggestion_rounds_up_to_64(longest: int, covering: int) -> None:
    assert suggested_sequence_len(longest) == covering


@pytest.mark.e2e
def test_the_demo_counts_its_rows_with_its_processor_and_warns_when_they_are_long(
    demo_cache: Path, tmp_path: Path
) -> None:
    done = run_cli(
        ["--no-ui", "--demo", "--sequence_len", "16", "--max_steps", "2"],
        tmp_path,
        clean_environ({"VLM_TUI_CACHE_DIR": str(demo_cache)}),
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    # The demo's rows are 31 tokens each: 16 image tokens and the text around them.
    assert (
        "[vlm-tui] tokens per row (images included, every row of 64): min 31, median 31,"
        " 95% 31, max 31" in done.stdout
    ), done.stdout
    assert "warning: 64 of 64 rows counted are longer than sequence_len 16" in done.stdout
    assert "--sequence_len 64 covers them" in done.stdout
    status = json.loads((only_run(tmp_path) / "status.json").read_text())
    assert status["datasets"][0]["tokens"]["max"] == 31
    assert status["datasets"][0]["tokens"]["over_sequence_len"] == 64
