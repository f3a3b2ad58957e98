"""Bad input: one line naming the field and what is allowed, exit 2, nothing created."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import refused, run_cli

BAD_FLAGS = [
    (["--batch_size", "abc"], "--batch_size", "whole number from 1 to 4096"),
    (["--batch-size", "0"], "--batch_size", "whole number"),
    (["--num_epochs", "1e9"], "--num_epochs", "whole number"),
    (["--learning_rate", "nan"], "--learning_rate", "finite number"),
    (["--learning_rate=-inf"], "--learning_rate", "finite number"),
    (["--lora_dropout", "1.5"], "--lora_dropout", "[0, 1)"),
    (["--precision", "int4"], "--precision", "one of: auto, bf16, fp16, fp32"),
    (["--output_model_name", "../../etc"], "--output_model_name", "one folder name"),
    (["--output_model_name", "$(reboot)"], "--output_model_name", "one folder name"),
    (["--output-model-name", ""], "--output_model_name", "must not be empty"),
    (["--dataset_name", "./missing.jsonl"], "--dataset_name", "does not exist"),
    (["--base_model", "/no/such/folder"], "--base_model", "does not exist"),
    (["--chat_template", "vicuna"], "--chat_template", "one of:"),
    (["--save_strategy", "steps"], "--save_steps", "required when save_strategy is 'steps'"),
    (["--config", "missing.yml"], "--config", "does not exist"),
    (["--demo", "--precision", "bf16"], "--precision", "needs a GPU"),
    (["--bogus"], "unrecognized arguments", "--bogus"),
    (["--batch_size"], "--batch_size", "expected one argument"),
]


@pytest.mark.parametrize(
    ("args", "field", "allowed"), BAD_FLAGS, ids=[" ".join(a[0]) for a in BAD_FLAGS]
)
def test_bad_flags_exit_2_with_one_line(
    args: list[str],
    field: str,
    allowed: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    line = refused(args, tmp_path, monkeypatch, capsys)
    assert field in line and allowed in line


def test_bad_flag_through_the_real_command(tmp_path: Path) -> None:
    done = run_cli(["--no-ui", "--num_epochs", "inf"], tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "vlm-tui: error: --num_epochs: must be a whole number from 1 to 10000 (got 'inf')"
    )
    assert not (tmp_path / "runs").exists()
