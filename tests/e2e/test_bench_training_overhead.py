"""Smoke test of the training-overhead benchmark: one short round of each arm really trains the
demo (bare axolotl, `vlm-tui --no-ui`, the TUI in tmux); no timing is judged."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bench.training_overhead import (
    ARMS,
    NOTES_TITLE,
    SECTION_TITLE,
    RoundResult,
    main,
    ratio,
    ratios_table,
    section,
    verdict,
    write_markdown,
)


@pytest.mark.e2e
def test_one_short_round_of_each_arm_trains_and_is_reported(
    demo_cache: Path, tmp_path: Path
) -> None:
    target = tmp_path / "BENCHMARKS.md"
    target.write_text("# Benchmarks\n\n## UI under a flood\n\nkept\n")
    figures = tmp_path / "results.json"
    arms = list(ARMS) if shutil.which("tmux") is not None else ["bare", "no-ui"]

    code = main(
        [
            "--rounds", "1", "--max-steps", "2", "--no-warm-up", "--arms", ",".join(arms),
            "--cache-dir", str(demo_cache), "--keep", str(tmp_path / "runs"),
            "--results-json", str(figures), "--write-markdown", str(target),
        ]
    )  # fmt: skip

    assert code == 0
    results = json.loads(figures.read_text())
    assert [r["arm"] for r in results] == arms
    for result in results:
        assert result["round"] == 1
        assert result["samples_per_s"] > 0 and result["train_runtime_s"] > 0
        assert result["command_wall_s"] >= result["training_wall_s"] > 0
        assert result["training_cpu_s"] > 0
        if result["arm"] == "bare":
            assert result["front_end_cpu_s"] is None
        else:
            # vlm-tui's own processes were found and read.
            assert result["front_end_cpu_s"] > 0 and result["supervisor_cpu_s"] > 0
            assert result["vlm_cpu_during_training_s"] is not None
    # Each arm trained in its own folder; the vlm-tui arms' runs ended with exit 0, 2 steps.
    for arm in arms[1:]:
        (status,) = (tmp_path / "runs" / "round-1" / arm / "runs").glob("*/status.json")
        recorded = json.loads(status.read_text())
        assert (recorded["state"], recorded["exit_code"], recorded["steps"]) == ("finished", 0, 2)
    assert (tmp_path / "runs" / "round-1" / "bare" / "outputs" / "bare").is_dir()

    text = target.read_text()
    assert text.startswith(
        "# Benchmarks\n\n## UI under a flood\n\nkept\n\n## Overhead on training\n"
    )
    assert "--rounds 1 --epochs 8 --max-steps 2" in text
    for arm in arms:
        assert f"\n| {arm} | `" in text, arm
    for arm in arms[1:]:
        assert f"\n| {arm} | " in text.split("Ratios, arm over bare")[1]
        assert f"of bare throughput), {arm}: **" in text


def _round(arm: str, index: int, samples_per_s: float, wall: float) -> RoundResult:
    vlm = arm != "bare"
    return RoundResult(
        arm=arm,
        round=index,
        load_1min=0.5,
        command_wall_s=wall + 5,
        training_wall_s=wall,
        samples_per_s=samples_per_s,
        train_runtime_s=512 / samples_per_s,
        training_cpu_s=wall,
        front_end_cpu_s=1.0 if vlm else None,
        supervisor_cpu_s=0.5 if vlm else None,
        vlm_cpu_during_training_s=0.3 if vlm else None,
    )


def test_ratios_pair_rounds_and_the_verdict_uses_the_medians() -> None:
    results = [
        _round("bare", 1, 50.0, 20.0),
        _round("no-ui", 1, 50.0, 20.0),
        _round("bare", 2, 40.0, 25.0),
        _round("no-ui", 2, 48.0, 21.0),
        _round("bare", 3, 60.0, 19.0),
        _round("no-ui", 3, 45.0, 22.0),
    ]
    samples = ratio(results, "no-ui", lambda r: r.samples_per_s)
    assert samples.of_medians == pytest.approx(48.0 / 50.0)
    assert samples.per_round == pytest.approx((1.0, 1.2, 0.75))
    assert "| no-ui | 0.960 (0.750-1.200) |" in ratios_table(results, ARMS)
    assert "no-ui: **missed** (0.960 of bare samples/s)" in verdict(results, ARMS)
    met = [_round("bare", 1, 50.0, 20.0), _round("no-ui", 1, 49.6, 20.0)]
    assert "no-ui: **met** (0.992" in verdict(met, ARMS)
    # Per training minute: 0.3 CPU s over 20 s of training.
    assert results[1].vlm_cpu_per_training_minute_s == pytest.approx(0.9)


def test_rewriting_the_section_keeps_its_notes(tmp_path: Path) -> None:
    target = tmp_path / "BENCHMARKS.md"
    results = [_round("bare", 1, 50.0, 20.0), _round("no-ui", 1, 49.0, 20.5)]
    notes = f"{NOTES_TITLE}\n\n- the supervisor polls every 0.1 s\n"
    target.write_text(
        f"# Benchmarks\n\n{section(results, 'old command', ARMS, notes)}\n## NVML poll\n\nx\n"
    )

    write_markdown(target, results, "new command", ARMS)

    text = target.read_text()
    assert "`new command`" in text and "`old command`" not in text
    assert text.count(SECTION_TITLE) == 1 and text.count(NOTES_TITLE) == 1
    assert "- the supervisor polls every 0.1 s\n" in text
    assert text.index(NOTES_TITLE) < text.index("## NVML poll")
