"""Tokens per row against sequence_len: the distribution said, long rows warned with a fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import clean_environ, only_run, run_cli
from vlm_tui.core.data.token_lengths import TokenLengths, suggested_sequence_len
from vlm_tui.core.launch import demo, steps


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
        "unreadable": 0,
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


def test_rows_the_processor_cannot_read_are_named_by_their_source_row() -> None:
    lengths = TokenLengths(rows=3, lengths=(31,), failed=((1, "OSError: Truncated File Read"),))
    assert lengths.counted == 2
    failure = lengths.failure(["row 1", "row 7", "row 9"])
    assert failure == (
        "warning: the model's processor could not read 1 of the 2 rows counted: row 7"
        " (OSError: Truncated File Read); the training fails when it reaches such a row"
    )
    assert TokenLengths(rows=1, lengths=(5,)).failure(["row 1"]) is None
    unreadable = TokenLengths(rows=1, lengths=(), failed=((0, "OSError: x"),))
    assert unreadable.line() == "tokens per row: none of the 1 rows counted could be read"
    assert unreadable.warning(16) is None
    assert unreadable.record(16) == {"counted": 1, "unreadable": 1}


@pytest.mark.e2e
def test_check_data_counts_tokens_with_a_model_and_finds_an_image_cut_short(
    demo_cache: Path, tmp_path: Path
) -> None:
    environ = clean_environ({"VLM_TUI_CACHE_DIR": str(demo_cache)})
    assets = demo.demo_asset_paths(demo.demo_cache_root(environ))
    steps.build_demo_in_child(assets, environ)
    rows = assets.dataset_path.read_text().splitlines()[:4]
    # Row 3's image has a PNG header and nothing after it: only a decode finds that.
    (tmp_path / "cut.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 8)
    cut = json.loads(rows[2])
    cut["messages"][0]["content"][0]["path"] = str(tmp_path / "cut.png")
    rows[2] = json.dumps(cut)
    (tmp_path / "data.jsonl").write_text("\n".join(rows) + "\n")
    done = run_cli(
        ["check-data", "data.jsonl", "--base_model", str(assets.model_dir), "--sequence_len", "16"],
        tmp_path,
        environ,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "tokens per row (images included, every row of 4): min 31" in done.stdout
    assert "warning: 3 of 4 rows counted are longer than sequence_len 16" in done.stdout
    assert "could not read 1 of the 4 rows counted: row 3 (" in done.stdout, done.stdout
