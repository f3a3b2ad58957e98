"""Smoke test of the Try screen's loading benchmark on the trained demo: its whole code path
runs, with one row; no timing is judged (the figures depend on the machine)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.try_loading import SECTION_TITLE, measure, section, trained_run
from tests.helpers import clean_environ

# With the demo's other users: they share the `demo_run` training (tests/conftest.py).
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("demo-run")]


def test_the_try_loading_bench_measures_every_window(
    demo_run: tuple[Path, str, int], demo_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workdir, _, code = demo_run
    assert code == 0
    for key, value in clean_environ({"VLM_TUI_CACHE_DIR": str(demo_cache)}).items():
        monkeypatch.setenv(key, value)
    result = measure(trained_run(workdir), 1, contrast=False)
    assert 0 < result.shown_s <= result.load_s <= result.answered_s
    assert result.ticks > 0
    assert result.loading_longest_ms >= result.loading_p99_ms >= 0
    text = section([result], "python -m bench.try_loading --rows 1 --repeats 1")
    assert text.startswith(SECTION_TITLE)
    row = next(line for line in text.splitlines() if line.startswith("| 1 |"))
    assert row.endswith("| - |")  # the in-loop contrast was not measured here
