"""Smoke test of the dataset-check benchmark: its dataset is valid, the command it times runs."""

from __future__ import annotations

from pathlib import Path

from bench.dataset_check import build, measure, section
from harness.images import tiny_png
from vlm_tui.core.data.dataset_check import check_dataset
from vlm_tui.core.data.image_header import image_kind


def test_the_scratch_dataset_is_valid_and_checked(tmp_path: Path) -> None:
    assert image_kind(tiny_png(3)) == "png"
    report = check_dataset(build(tmp_path / "data", 50), tmp_path)
    assert report.ok and (report.rows, report.images) == (50, 50)


def test_a_small_run_reports_without_judging() -> None:
    seconds, summary, built_s = measure(20, 1)
    assert len(seconds) == 1 and seconds[0] > 0 and built_s > 0
    assert summary.startswith("20 rows (llava 20), 20 images"), summary
    text = section(20, seconds, summary, built_s)
    assert text.startswith("## Dataset check\n")
    assert "not judged (20 rows" in text
