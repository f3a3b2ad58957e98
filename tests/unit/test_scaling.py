"""Run history and scaling (`vlm-tui runs --compare`) on run folders recorded by hand.

Each folder holds what a finished run leaves: command.json with its topology, config.yml, and
the trainer's output put through the supervisor's own parser (tests/recorded_runs.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.helpers import run_cli
from tests.recorded_runs import record_output
from vlm_tui.core.errors import UserError
from vlm_tui.core.records.folder import RunPaths, write_json_atomic
from vlm_tui.core.runs.scaling import (
    GUIDE_EFFICIENCY,
    SPARK_LEVELS,
    compare,
    config_identity,
    guide_expectation,
    loss_curve_lines,
    read_run,
    report_lines,
    select_and_compare,
    table_lines,
)
from vlm_tui.core.training_plugins import CPU_PLACEMENT_PLUGIN

# A demo-like config; the model and data paths are only written down, never read.
CONFIG = {
    "base_model": "/data.invalid/model",
    "datasets": [{"path": "/data.invalid/demo.jsonl", "type": "chat_template"}],
    "micro_batch_size": 4,
    "gradient_accumulation_steps": 1,
    "num_epochs": 2,
    "learning_rate": 0.01,
    "adapter": "lora",
    "output_dir": "/work.invalid/outputs/vlm-tui-demo",
}
SAMPLES = 128  # 64 samples x 2 epochs


def trainer_output(steps: int, samples_per_second: float, tokens_per_step: int = 60) -> str:
    """What the trainer prints: a metrics dict a step, then its summary."""
    lines = []
    for step in range(1, steps + 1):
        metrics = {
            "loss": f"{7.0 / step:.4g}",
            "learning_rate": "0.01",
            "tokens/trainable": str(tokens_per_step * step),
            "epoch": f"{2 * step / steps:.4g}",
        }
        lines.append(str(metrics))
    runtime = SAMPLES / samples_per_second
    summary = {
        "train_runtime": f"{runtime:.4f}",
        "train_samples_per_second": str(samples_per_second),
        "train_steps_per_second": f"{steps / runtime:.4g}",
        "train_loss": "1.2",
        "epoch": "2.0",
    }
    lines.append(str(summary))
    lines.append("[axolotl.train] Training completed!")
    return "\n".join(lines) + "\n"


def scaling_run(
    runs: Path,
    name: str,
    *,
    processes: int = 1,
    samples_per_second: float | None = 50.0,
    state: str = "finished",
    config: dict[str, object] | None = None,
    node_rank: int = 0,
) -> RunPaths:
    """A run folder as the supervisor leaves it: `processes` in all, one micro batch each."""
    paths = RunPaths(runs / name)
    paths.root.mkdir(parents=True)
    topology = {
        "nodes": 1 if node_rank == 0 else 2,
        "node_rank": node_rank,
        "processes_per_node": processes,
        "world_size": processes,
        "global_rank": node_rank,
    }
    write_json_atomic(
        paths.command,
        {"argv": ["python"], "logging_steps": 1, "start_step": 0, "topology": topology},
    )
    paths.config.write_text(yaml.safe_dump(config or CONFIG, sort_keys=False))
    steps = 32 // processes
    output = trainer_output(steps, samples_per_second) if samples_per_second else ""
    if not samples_per_second:  # stopped before the end: losses, no summary
        output = "".join(f"{{'loss': {7.0 / step:.4f}, 'epoch': 0.1}}\n" for step in (1, 2))
    status = {
        "state": state,
        "exit_code": 0 if state == "finished" else 1,
        "started_at": "2026-11-24T10:00:00.000Z",
        "ended_at": "2026-11-24T10:00:20.000Z",
    }
    record_output(paths, output, status)
    return paths


def row_of(lines: list[str], name: str) -> list[str]:
    """The table row of run `name`, split on the two-space column gaps."""
    line = next(line for line in lines if line.startswith(name + " "))
    return [cell.strip() for cell in line.split("  ") if cell.strip()]


def test_the_guide_table_and_what_its_rows_imply() -> None:
    assert pytest.approx(0.875) == GUIDE_EFFICIENCY
    assert guide_expectation(1) == "1x (baseline)"
    assert guide_expectation(4) == "~3.5x"
    assert guide_expectation(8) == "~7x (its example: 6.7x)"
    assert guide_expectation(16) == "~14x"
    # Not in the guide: said to be derived from its efficiency.
    assert guide_expectation(2) == "~1.75x (at 87.5% efficiency)"
    assert guide_expectation(32) == "~28x (at 87.5% efficiency)"
    assert guide_expectation(None) == "-"


def test_config_identity_ignores_only_what_differs_per_run() -> None:
    base = config_identity(yaml.safe_dump(CONFIG))
    assert base is not None and len(base) == 8
    per_run = {
        **CONFIG,
        "output_dir": "/elsewhere.invalid/outputs/vlm-tui-demo-2",
        "resume_from_checkpoint": "/elsewhere.invalid/outputs/vlm-tui-demo/checkpoint-16",
        "plugins": [CPU_PLACEMENT_PLUGIN],
    }
    assert config_identity(yaml.safe_dump(per_run)) == base
    # Key order is not identity either.
    assert config_identity(yaml.safe_dump(dict(reversed(CONFIG.items())))) == base
    assert config_identity(yaml.safe_dump({**CONFIG, "micro_batch_size": 8})) != base
    assert config_identity(yaml.safe_dump({**CONFIG, "plugins": ["my.Plugin"]})) != base
    # A run's own copy of its dataset is identified by the dataset it was made from.
    source = CONFIG["datasets"][0]["path"]
    copy = "/elsewhere.invalid/runs/20261202T000000Z-m/dataset.jsonl"
    copied = {**CONFIG, "datasets": [{**CONFIG["datasets"][0], "path": copy}]}
    assert config_identity(yaml.safe_dump(copied), {copy: source}) == base
    assert config_identity(yaml.safe_dump(copied)) != base
    assert config_identity("- a list\n") is None
    assert config_identity("key: [unclosed\n") is None


def test_a_recorded_runs_figures(tmp_path: Path) -> None:
    run = read_run(scaling_run(tmp_path / "runs", "one", processes=2, samples_per_second=80.0))
    assert run.finished and run.processes == 2 and not run.other_node
    assert run.samples_per_second == 80.0
    assert run.train_runtime_s == pytest.approx(SAMPLES / 80.0, rel=1e-3)
    # 16 steps of 60 trainable tokens over the summary's runtime.
    assert run.tokens_per_second == pytest.approx(16 * 60 / (SAMPLES / 80.0), rel=1e-3)
    assert [point.step for point in run.losses] == list(range(1, 17))
    assert run.losses[0].loss == 7.0 and run.losses[-1].epoch == 2.0
    assert run.final_loss == run.losses[-1].loss
    assert run.config_id == config_identity(yaml.safe_dump(CONFIG))


def test_speedup_is_samples_per_second_over_the_best_single_process_run(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    scaling_run(runs, "a-slow-one", samples_per_second=40.0)
    scaling_run(runs, "b-fast-one", samples_per_second=50.0)
    scaling_run(runs, "c-two", processes=2, samples_per_second=85.0)
    scaling_run(runs, "d-four", processes=4, samples_per_second=160.0)
    # Faster, but failed: never a baseline, and not compared by default.
    scaling_run(runs, "e-failed-one", samples_per_second=99.0, state="failed")
    selection = select_and_compare(runs)
    names = [one.run.paths.run_id for one in selection.compared]
    assert names == ["a-slow-one", "b-fast-one", "c-two", "d-four"]
    assert all(
        one.baseline and one.baseline.paths.run_id == "b-fast-one" for one in selection.compared
    )
    speedups = {one.run.paths.run_id: one.speedup for one in selection.compared}
    assert speedups["c-two"] == pytest.approx(1.7)
    assert speedups["d-four"] == pytest.approx(3.2)
    lines = table_lines(selection.compared)
    assert lines[0].split() == [
        "RUN",
        "CONFIG",
        "PROCS",
        "SAMPLES/S",
        "TOKENS/S",
        "RUNTIME",
        "LOSS",
        "EVAL",
        "LOSS",
        "SPEED-UP",
        "GUIDE",
        "EXPECTS",
    ]
    assert row_of(lines, "a-slow-one")[-2:] == ["0.8x", "1x (baseline)"]
    assert row_of(lines, "b-fast-one")[-2:] == ["1.0x (baseline)", "1x (baseline)"]
    assert row_of(lines, "c-two")[2:4] == ["2", "85"]
    # None of them evaluated: no eval loss is made up.
    assert all(row_of(lines, name)[-3] == "-" for name in names)
    assert row_of(lines, "c-two")[-2:] == ["1.7x", "~1.75x (at 87.5% efficiency)"]
    assert row_of(lines, "d-four")[-2:] == ["3.2x", "~3.5x"]


def test_runs_without_a_baseline_or_a_summary_say_so(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    scaling_run(runs, "a-one", samples_per_second=50.0)
    other_config = {**CONFIG, "micro_batch_size": 8}
    scaling_run(
        runs, "b-two-other-config", processes=2, samples_per_second=90.0, config=other_config
    )
    scaling_run(runs, "c-no-summary", samples_per_second=None)
    scaling_run(runs, "d-stopped", processes=2, state="stopped")
    selection = select_and_compare(runs, ["b-two", "c-no-summary", "d-stopped"])
    lines = table_lines(selection.compared)
    assert row_of(lines, "b-two-other-config")[-2] == "no 1-process baseline"
    assert row_of(lines, "c-no-summary")[-2] == "- (no summary)"
    assert row_of(lines, "d-stopped")[-2] == "- (stopped)"
    # Compared by default: finished runs only.
    assert [one.run.paths.run_id for one in select_and_compare(runs).compared] == [
        "a-one",
        "b-two-other-config",
        "c-no-summary",
    ]


def test_other_nodes_folders_are_not_runs_of_their_own(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    scaling_run(runs, "a-one", samples_per_second=50.0)
    scaling_run(runs, "b-two-nodes", processes=2, samples_per_second=90.0)
    scaling_run(runs, "b-two-nodes-node1", processes=2, samples_per_second=90.0, node_rank=1)
    # A 1-process-looking folder of node 1 is never anyone's baseline either.
    scaling_run(runs, "c-odd-node1", processes=1, samples_per_second=500.0, node_rank=1)
    selection = select_and_compare(runs)
    assert [one.run.paths.run_id for one in selection.compared] == ["a-one", "b-two-nodes"]
    assert selection.compared[1].speedup == pytest.approx(1.8)
    named = select_and_compare(runs, ["b-two-nodes-node1", "b-two-nodes"])
    assert [one.run.paths.run_id for one in named.compared] == ["b-two-nodes"]
    assert len(named.skipped) == 1 and named.skipped[0].startswith("b-two-nodes-node1: ")
    assert report_lines(named)[0].startswith("skipped b-two-nodes-node1: another node's part")


def test_naming_a_run_outside_runs_compares_it_with_the_runs_there(tmp_path: Path) -> None:
    scaling_run(tmp_path / "runs", "a-one", samples_per_second=50.0)
    elsewhere = scaling_run(tmp_path / "copied", "b-two", processes=2, samples_per_second=75.0)
    selection = select_and_compare(tmp_path / "runs", [str(elsewhere.root)])
    assert [one.speedup for one in selection.compared] == [pytest.approx(1.5)]
    with pytest.raises(UserError, match="no run matches 'nothing'"):
        select_and_compare(tmp_path / "runs", ["nothing"])


def test_loss_curves_share_one_axis_and_one_scale(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    one = read_run(scaling_run(runs, "a-one", samples_per_second=50.0))
    two = read_run(scaling_run(runs, "b-two", processes=2, samples_per_second=90.0))
    lines = loss_curve_lines([one, two], width=32)
    assert lines[0].startswith("loss by epoch, 0.0625 to 2, one log scale for all:")
    # "a-one  " and "b-two  ", then 32 columns of curve.
    curves = {line[:5]: line[7 : 7 + 32] for line in lines[1:]}
    assert set(curves) == {"a-one", "b-two"}
    assert curves["a-one"][0] == SPARK_LEVELS[-1] and curves["a-one"][-1] == SPARK_LEVELS[0]
    # The 2-process run's first loss comes a column later: each of its steps is 8 samples.
    assert curves["b-two"][0] == " " and curves["b-two"][1] == SPARK_LEVELS[-1]
    # One scale for both: its last loss (0.438) is double the lowest (0.219), a level up from it
    # on a log scale from 0.219 to 7.
    assert curves["b-two"][-1] == SPARK_LEVELS[1]
    assert lines[1].endswith("  7 -> 0.219, min 0.219")
    assert lines[2].endswith("  7 -> 0.438, min 0.438")


def test_compare_keeps_the_given_order_and_finds_baselines_among_all(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    base = read_run(scaling_run(runs, "a-one", samples_per_second=50.0))
    two = read_run(scaling_run(runs, "b-two", processes=2, samples_per_second=60.0))
    compared = compare([two], [base, two])
    assert [one.speedup_text for one in compared] == ["1.2x"]


def test_cli_compare_prints_the_table_curves_and_how_it_is_computed(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    scaling_run(runs, "20261124T100000Z-vlm-tui-demo", samples_per_second=50.0)
    scaling_run(runs, "20261124T100100Z-vlm-tui-demo-2", processes=2, samples_per_second=85.0)
    done = run_cli(["runs", "--compare"], tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert row_of(lines, "20261124T100100Z-vlm-tui-demo-2")[-2:] == [
        "1.7x",
        "~1.75x (at 87.5% efficiency)",
    ]
    assert any(line.startswith("loss by epoch") for line in lines)
    assert "samples/s is compared, not steps or wall time" in " ".join(lines)
    assert "multi-node training guide" in done.stdout
    named = run_cli(["runs", "--compare", "demo-2"], tmp_path)
    assert named.returncode == 0, named.stderr
    assert [line.split()[0] for line in named.stdout.splitlines()[:2]] == [
        "RUN",
        "20261124T100100Z-vlm-tui-demo-2",
    ]
    # `vlm-tui runs` shows the processes and samples/s too.
    listed = run_cli(["runs"], tmp_path)
    assert listed.stdout.splitlines()[2].split()[4:6] == ["2", "85"]


def test_cli_compare_with_nothing_to_compare(tmp_path: Path) -> None:
    done = run_cli(["runs", "--compare"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "no finished runs to compare\n"


BAD_COMPARES = [
    (["runs", "--compare", "nothing-like-it"], "RUN: no run matches 'nothing-like-it'"),
    (["runs", "--compare", ""], "RUN: must not be empty"),
    (["runs", "alpha"], "RUN: naming runs needs --compare"),
    (["runs", "--compare", "--bogus"], "unrecognized arguments: --bogus"),
]


@pytest.mark.parametrize(
    ("args", "message"), BAD_COMPARES, ids=[" ".join(a) for a, _ in BAD_COMPARES]
)
def test_bad_compares_exit_2_with_one_line(args: list[str], message: str, tmp_path: Path) -> None:
    scaling_run(tmp_path / "runs", "20261124T100000Z-alpha")
    done = run_cli(args, tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert message in done.stderr
    assert done.stdout == ""
