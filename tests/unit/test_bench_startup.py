"""Smoke test of the start-up benchmark: every command it times runs; no timing is judged."""

from __future__ import annotations

from bench.startup import Timing, measure, section, table, verdict


def test_each_command_runs_and_the_section_names_the_targets() -> None:
    timings = measure(1, warm_up=False)
    names = [one.name for one in timings]
    assert names[:3] == ["vlm-tui --help", "vlm-tui --no-ui --dry-run --demo", "TUI first frame"]
    assert all(len(one.seconds) == 1 and one.seconds[0] > 0 for one in timings)
    text = section(timings, 1)
    assert text.startswith("## Start-up\n")
    assert "Dry run under 0.3 s: **" in text


def test_the_verdict_compares_medians() -> None:
    timings = [
        Timing("vlm-tui --no-ui --dry-run --demo", "dry", [0.2, 0.25, 0.9]),
        Timing("accelerate launch --help", "acc", [5.0, 5.0, 1.0]),
    ]
    assert "**met** (0.250 s)" in verdict(timings)
    assert "**met** (20.0x" in verdict(timings)
    assert table(timings).splitlines()[2] == "| `dry` | 0.250 | 0.200 | 0.900 | 3 |"


def test_the_verdict_compares_with_the_code_before() -> None:
    timings = [
        Timing("vlm-tui --no-ui --dry-run --demo", "dry", [0.2]),
        Timing("vlm-tui --no-ui --dry-run --demo (before)", "dry before", [0.25]),
        Timing("vlm-tui --help", "help", [0.3]),
        Timing("vlm-tui --help (before)", "help before", [0.2]),
    ]
    text = verdict(timings)
    assert "`vlm-tui --no-ui --dry-run --demo` now takes 0.80x what it took before." in text
    assert "`vlm-tui --help` now takes 1.50x what it took before." in text
