"""Smoke test of the flood benchmark: its whole code path runs, briefly; no timing is judged.

The figures depend on the machine, so only that they were produced is checked: lines reached
the monitor, a stall and an RSS figure exist, the table has a row, and rewriting BENCHMARKS.md
keeps everything outside the figures it replaces.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.ui_flood import (
    FILE_HEADER,
    SECTION_TITLE,
    Flood,
    FloodResult,
    format_table,
    measure,
    update_document,
)


@pytest.mark.parametrize(
    ("supervisor", "pipeline"), [(True, "real supervisor"), (False, "stand-in")]
)
def test_a_short_flood_reaches_the_monitor_and_gives_every_figure(
    supervisor: bool, pipeline: str, tmp_path: Path
) -> None:
    flood = Flood(rate=5_000, seconds=1.0, supervisor=supervisor)
    result = measure(flood, breakdown=True, scratch=tmp_path)

    assert result.offered_lines >= 5_000
    assert result.received > 0
    assert result.written > 0
    assert result.ticks > 0
    assert result.longest_stall_ms >= result.p99_stall_ms >= 0
    assert result.peak_rss_mb > 0 and result.ru_maxrss_mb > 0
    assert result.loss_points > 0
    assert result.breakdown["MonitorScreen._absorb"].calls > 0
    assert result.breakdown["RecordFollower.poll"].calls > 0
    table = format_table([result]).splitlines()
    assert len(table) == 3
    assert table[2].startswith(f"| {pipeline} | 5,000 | ")
    # The workload survives the trip through JSON that isolated runs take.
    assert FloodResult.from_json(result.to_json()) == result


def _figures(rate: int) -> FloodResult:
    """A result as a run would give it, without running one."""
    return FloodResult(
        flood=Flood(rate=rate, seconds=0.5),
        offered_lines=1_002,
        produce_s=0.5,
        received=1_002,
        written=1_002,
        not_shown=0,
        follow_s=0.6,
        lag_s=0.1,
        longest_stall_ms=12.0,
        p99_stall_ms=8.0,
        ticks=100,
        baseline_rss_mb=40.0,
        peak_rss_mb=45.0,
        final_rss_mb=44.0,
        ru_maxrss_mb=45.0,
        loss_points=50,
        cpu_percent=30.0,
        load_average=0.5,
    )


def test_rewriting_the_figures_keeps_other_sections_and_other_commands() -> None:
    result = _figures(2_000)
    document = (
        FILE_HEADER + "\n## Start-up\n\nstart-up figures\n\n" + f"{SECTION_TITLE}\n\nold method\n\n"
        "### `python -m bench.ui_flood --rates max --lines 10`\n\nlong-run figures\n\n"
        "### `python -m bench.ui_flood --rates 2000 --seconds 0.5`\n\nstale figures\n\n"
        "## Memory\n\nmemory figures\n"
    )

    updated = update_document(
        document, [result], "python -m bench.ui_flood --rates 2000 --seconds 0.5"
    )

    assert updated.startswith(FILE_HEADER)
    assert "start-up figures" in updated and "memory figures" in updated
    assert updated.index("## Start-up") < updated.index(SECTION_TITLE) < updated.index("## Memory")
    assert "long-run figures" in updated
    assert "stale figures" not in updated and "old method" not in updated
    assert updated.count("### `python -m bench.ui_flood --rates 2000 --seconds 0.5`") == 1
    assert "| 2,000 | " in updated
    # Adding to a file without the section appends it and leaves the rest alone.
    added = update_document(FILE_HEADER, [result], "python -m bench.ui_flood --rates 2000")
    assert added.startswith(FILE_HEADER) and added.count(SECTION_TITLE) == 1
