"""Validators shared by the CLI and the form: accepted values, and the one-line refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from vlm_tui.core.errors import UserError
from vlm_tui.core.request.settings import Settings, settings_from_values, validate_field


@pytest.mark.parametrize(
    ("name", "raw", "expected"),
    [
        ("batch_size", "4", 4),
        ("batch_size", 8, 8),
        ("num_epochs", "1", 1),
        ("learning_rate", "2e-4", 2e-4),
        ("learning_rate", "1", 1.0),
        ("lora_dropout", "0", 0.0),
        ("precision", "BF16", "bf16"),
        ("full_finetune", "yes", True),
        ("image_size", "", None),
        ("max_steps", "  ", None),
        ("output_model_name", "llava-ft_v1.2", "llava-ft_v1.2"),
        ("base_model", "Qwen/Qwen2-VL-2B-Instruct", "Qwen/Qwen2-VL-2B-Instruct"),
        ("dataset_name", "HuggingFaceM4/the_cauldron", "HuggingFaceM4/the_cauldron"),
        ("seed", str(2**32 - 1), 2**32 - 1),
        ("val_set_size", "0.05", 0.05),
        ("val_set_size", "0", 0.0),
        ("val_set_size", "200", 200),
        ("val_set_size", 0.1, 0.1),
        ("val_set_size", 12.0, 12),
        ("eval_steps", "", None),
        ("eval_steps", "50", 50),
    ],
)
def test_valid_values(name: str, raw: object, expected: object) -> None:
    assert validate_field(name, raw) == expected


@pytest.mark.parametrize(
    ("name", "raw", "allowed"),
    [
        ("batch_size", "abc", "whole number from 1 to 4096"),
        ("batch_size", "0", "whole number from 1 to 4096"),
        ("batch_size", "2.5", "whole number"),
        ("batch_size", True, "whole number"),
        ("num_epochs", "-1", "whole number"),
        ("learning_rate", "nan", "finite number in (0, 1]"),
        ("learning_rate", "inf", "finite number"),
        ("learning_rate", "0", "finite number in (0, 1]"),
        ("lora_dropout", "1", "[0, 1)"),
        ("precision", "fp8", "one of: auto, bf16, fp16, fp32"),
        ("save_strategy", "hourly", "one of: epoch, steps, no"),
        ("output_model_name", "../escape", "one folder name"),
        ("output_model_name", "a/b", "one folder name"),
        ("output_model_name", "x" * 101, "one folder name"),
        ("output_model_name", "model; rm -rf ~", "one folder name"),
        ("output_model_name", "modèle", "one folder name"),
        ("output_model_name", "", "must not be empty"),
        ("output_model_name", ".hidden", "one folder name"),
        ("base_model", "./no/such/model", "does not exist"),
        ("base_model", "not a model id!", "hub model id"),
        ("dataset_name", "/no/such/file.jsonl", "does not exist"),
        ("dataset_name", "a\x00b", "NUL"),
        ("chat_template", "chatml", "one of: llava"),
        ("full_finetune", "maybe", "true or false"),
        ("val_set_size", "1.5", "a share of the rows from 0 to below 1"),
        ("val_set_size", "-0.1", "a share of the rows"),
        ("val_set_size", "nan", "or a row count"),
        ("val_set_size", "five", "or a row count"),
        ("val_set_size", True, "a share of the rows"),
        ("eval_steps", "0", "whole number from 1"),
        ("eval_dataset", "/no/such/eval.jsonl", "does not exist"),
    ],
)
def test_invalid_values_name_the_field_and_what_is_allowed(
    name: str, raw: object, allowed: str
) -> None:
    with pytest.raises(UserError) as caught:
        validate_field(name, raw)
    assert caught.value.field == name
    assert allowed in caught.value.message
    assert "\n" not in str(caught.value)


def test_local_paths_become_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "data.jsonl").write_text("{}\n")
    (tmp_path / "model").mkdir()
    monkeypatch.chdir(tmp_path)
    assert validate_field("dataset_name", "data.jsonl") == str(tmp_path / "data.jsonl")
    assert validate_field("base_model", "./model") == str(tmp_path / "model")


def test_a_local_file_with_an_unknown_suffix_is_refused(tmp_path: Path) -> None:
    (tmp_path / "data.txt").write_text("x")
    with pytest.raises(UserError, match="must end in one of"):
        validate_field("dataset_name", str(tmp_path / "data.txt"))


def test_settings_record_which_fields_were_given(tmp_path: Path) -> None:
    (tmp_path / "d.jsonl").write_text("{}\n")
    settings = settings_from_values(
        {"dataset_name": str(tmp_path / "d.jsonl"), "output_model_name": "m", "batch_size": "3"}
    )
    assert settings.batch_size == 3
    assert settings.explicit == {"dataset_name", "output_model_name", "batch_size"}
    assert settings.num_epochs == Settings().num_epochs


def test_cross_field_rules() -> None:
    with pytest.raises(UserError) as caught:
        settings_from_values({"save_strategy": "steps"}, require_data=False)
    assert caught.value.field == "save_steps"
    with pytest.raises(UserError) as caught:
        settings_from_values({"output_model_name": "m"})
    assert caught.value.field == "dataset_name"


@pytest.mark.parametrize(
    ("values", "field", "allowed"),
    [
        ({"val_set_size": "0.1", "eval_dataset": "EVAL"}, "eval_dataset", "not both"),
        ({"eval_steps": "10"}, "eval_steps", "only applies with val_set_size or eval_dataset"),
    ],
)
def test_evaluation_settings_that_contradict_each_other_are_refused(
    values: dict[str, str], field: str, allowed: str, tmp_path: Path
) -> None:
    (tmp_path / "eval.jsonl").write_text("{}\n")
    given = {k: str(tmp_path / "eval.jsonl") if v == "EVAL" else v for k, v in values.items()}
    with pytest.raises(UserError) as caught:
        settings_from_values({**given, "dataset_name": "org/set", "output_model_name": "m"})
    assert caught.value.field == field and allowed in caught.value.message
