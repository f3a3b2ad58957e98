"""The form's logic without Textual: edits, errors, YAML read-back, the effective batch."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import clean_environ
from vlm_tui.core.launch import steps
from vlm_tui.core.request.axolotl_config import settings_values_from_config
from vlm_tui.core.request.settings import Settings, settings_from_values
from vlm_tui.tui.setup_values import (
    FormStart,
    build_request,
    edited,
    effective_batch_line,
    field_errors,
    start_for,
)

AUTO = {"topology": "auto"}


def test_only_edited_fields_become_explicit(tmp_path: Path) -> None:
    start = FormStart(settings=Settings(), loaded_config={"base_model": "a/b", "lora_r": 99})
    texts = {**start.texts(), "lora_alpha": "64"}
    assert edited(start, texts) == {"lora_alpha": "64"}
    form = build_request(start, texts, AUTO, clean_environ(), gpu_count=0)
    assert form.request.settings.explicit == frozenset({"lora_alpha"})
    assert form.request.loaded_config == {"base_model": "a/b", "lora_r": 99}


def test_demo_paths_are_not_checked_before_they_are_built(tmp_path: Path) -> None:
    environ = clean_environ({"VLM_TUI_CACHE_DIR": str(tmp_path / "cache")})
    start = start_for(steps.LaunchRequest(settings=Settings(), demo=True), environ, tmp_path)
    assert start.built_at_launch == {"base_model", "dataset_name"}
    assert field_errors(start, start.texts()) == {}
    texts = {**start.texts(), "dataset_name": str(tmp_path / "missing.jsonl")}
    assert "does not exist" in field_errors(start, texts)["dataset_name"]


def test_flags_prefill_the_form(tmp_path: Path) -> None:
    settings = settings_from_values({"batch_size": "8", "full_finetune": True}, require_data=False)
    start = start_for(steps.LaunchRequest(settings=settings), clean_environ(), tmp_path)
    assert start.texts()["batch_size"] == "8"
    assert start.texts()["full_finetune"] is True


def test_effective_batch_counts_every_process() -> None:
    texts = {"batch_size": "4", "gradient_accumulation_steps": "8"}
    assert effective_batch_line(texts, 16).endswith("= 512 samples per step")
    assert "fix batch size" in effective_batch_line({"batch_size": "0"}, 1)


def test_a_loaded_yaml_reads_back_into_form_values() -> None:
    values = settings_values_from_config(
        {
            "base_model": "owner/model",
            "micro_batch_size": 6,
            "learning_rate": "not a number",
            "bf16": True,
            "output_dir": "./outputs/mine/",
            "adapter": "lora",
            "lora_r": 32,
        }
    )
    assert values["base_model"] == "owner/model"
    assert values["batch_size"] == 6
    assert values["precision"] == "bf16"
    assert values["output_model_name"] == "mine"
    assert values["full_finetune"] is False
    assert values["lora_r"] == 32
    # A value our validators refuse is left to the YAML.
    assert "learning_rate" not in values
