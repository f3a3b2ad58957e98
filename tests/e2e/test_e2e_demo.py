"""End to end with real axolotl: `vlm-tui --no-ui --demo` trains the tiny VLM on a CPU."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.helpers import clean_environ, run_cli
from vlm_tui.core.checks.schema_check import check_with_axolotl

# One worker runs this module and test_e2e_distributed.py: they share the `demo_run` training.
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("demo-run")]


def _first_run(workdir: Path) -> Path:
    """The run the fixture made (a later test adds a dry run beside it)."""
    return sorted((workdir / "runs").iterdir())[0]


# `demo_run` (tests/conftest.py): one real demo run, shared with the scaling comparison.


def test_demo_trains_and_exits_0(demo_run: tuple[Path, str, int]) -> None:
    workdir, output, code = demo_run
    assert code == 0, output[-3000:]
    assert len(list((workdir / "runs").iterdir())) == 1
    status = json.loads((_first_run(workdir) / "status.json").read_text())
    assert status["state"] == "finished"
    assert status["exit_code"] == 0
    assert "🖥️  Single GPU mode - running without distributed setup" in output
    assert "Training command: " in output and "-m axolotl.cli.train " in output
    assert "[vlm-tui] finished (exit 0)" in output


def test_every_logged_step_has_a_loss_and_the_loss_goes_down(
    demo_run: tuple[Path, str, int],
) -> None:
    workdir, _, _ = demo_run
    run = _first_run(workdir)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["kind"] == "train"]
    status = json.loads((run / "status.json").read_text())
    assert status["progress"] is not None, status
    total = status["progress"]["total"]
    assert total and [r["step"] for r in train] == list(range(1, total + 1))
    assert all(isinstance(r["loss"], float) for r in train)
    assert train[-1]["loss"] < train[0]["loss"]
    assert status["first_loss"] == train[0]["loss"] and status["final_loss"] == train[-1]["loss"]
    assert next(r for r in records if r["kind"] == "summary")["train_runtime"] > 0


def test_the_adapter_is_saved(demo_run: tuple[Path, str, int]) -> None:
    workdir, output, _ = demo_run
    model = workdir / "outputs" / "vlm-tui-demo"
    assert (model / "adapter_model.safetensors").is_file()
    assert (model / "adapter_config.json").is_file()
    assert f"[vlm-tui] model saved to {model}" in output


def test_train_log_holds_everything_the_child_printed(demo_run: tuple[Path, str, int]) -> None:
    workdir, output, _ = demo_run
    run = _first_run(workdir)
    raw = (run / "train.log").read_bytes()
    assert b"\r" in raw  # the tqdm redraws, byte for byte
    log_text = raw.decode("utf-8", "replace")
    # Each line the headless run showed from the training is in train.log, in the same order.
    start = output.index("[vlm-tui] run folder:")
    shown = [
        line
        for line in output[start:].splitlines()[1:]
        if line.strip() and not line.startswith("[vlm-tui]")
    ]
    assert len(shown) > 20
    position = 0
    for line in shown:
        found = log_text.find(line, position)
        assert found >= 0, line
        position = found + len(line)
    command = json.loads((run / "command.json").read_text())
    assert command["argv"][1:3] == ["-m", "axolotl.cli.train"]
    assert command["env"]["AXOLOTL_DO_NOT_TRACK"] == "1"
    assert command["env"]["PYTHONUNBUFFERED"] == "1"


def test_a_second_demo_does_not_overwrite_the_first(
    demo_run: tuple[Path, str, int], demo_cache: Path
) -> None:
    workdir, _, _ = demo_run
    done = run_cli(
        ["--no-ui", "--demo", "--dry-run"],
        workdir,
        clean_environ({"VLM_TUI_CACHE_DIR": str(demo_cache)}),
    )
    assert done.returncode == 0, done.stderr
    assert (
        "outputs/vlm-tui-demo-2"
        in (sorted((workdir / "runs").iterdir())[-1] / "config.yml").read_text()
    )


def test_a_failing_training_exits_nonzero_with_a_reason(demo_cache: Path, tmp_path: Path) -> None:
    # A PNG header and nothing after it: the check before launch reads headers only, so the
    # training is what finds the image cut short.
    (tmp_path / "cut.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 8)
    row = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image", "path": "cut.png"},
                    {"type": "text", "text": "What?"},
                ],
            },
            {"role": "assistant", "content": "A cut image."},
        ]
    }
    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps(row) + "\n")
    done = run_cli(
        ["--no-ui", "--demo", "--skip-check", "--dataset_name", str(broken)],
        tmp_path,
        clean_environ({"VLM_TUI_CACHE_DIR": str(demo_cache)}),
    )
    assert done.returncode != 0
    reasons = [line for line in done.stdout.splitlines() if line.startswith("[vlm-tui] reason: ")]
    assert len(reasons) == 1 and len(reasons[0]) > len("[vlm-tui] reason: ")
    status = json.loads((_first_run(tmp_path) / "status.json").read_text())
    assert status["state"] == "failed"
    assert status["exit_code"] == done.returncode
    assert status["reason"] == reasons[0].removeprefix("[vlm-tui] reason: ")


def test_the_demo_config_passes_axolotls_schema(demo_run: tuple[Path, str, int]) -> None:
    workdir, output, _ = demo_run
    assert "[vlm-tui] checking the config with axolotl's schema" in output
    config = _first_run(workdir) / "config.yml"
    assert check_with_axolotl(config, clean_environ({"HF_HUB_OFFLINE": "1"})) == []


def test_axolotls_schema_errors_come_back_as_field_errors(demo_run: tuple[Path, str, int]) -> None:
    workdir, _, _ = demo_run
    config = yaml.safe_load((_first_run(workdir) / "config.yml").read_text())
    config["micro_batch_size"] = "lots"
    broken = workdir / "broken.yml"
    broken.write_text(yaml.safe_dump(config))
    errors = check_with_axolotl(broken, clean_environ({"HF_HUB_OFFLINE": "1"}))
    assert [error["field"] for error in errors] == ["micro_batch_size"]
