"""The axolotl config builder: multimodal keys per family, safe precision, --config merge."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from vlm_tui.core.axolotl_config import (
    build_axolotl_config,
    dump_axolotl_yaml,
    load_axolotl_yaml,
    merge_into_loaded,
)
from vlm_tui.core.errors import UserError
from vlm_tui.core.hardware import CPU_ONLY, Hardware
from vlm_tui.core.model_family import model_family
from vlm_tui.core.settings import settings_from_values

A100 = Hardware(gpu_names=("NVIDIA A100-SXM4-80GB",), min_compute_capability=(8, 0))
V100 = Hardware(gpu_names=("Tesla V100-SXM2-32GB",), min_compute_capability=(7, 0))
MULTIMODAL_KEYS = {
    "processor_type": "AutoProcessor",
    "skip_prepare_dataset": True,
    "remove_unused_columns": False,
    "sample_packing": False,
}
LANGUAGE_ONLY = (
    r"model.language_model.layers.[\d]+.(mlp|cross_attn|self_attn).(up|down|gate|q|k|v|o)_proj"
)


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    path = tmp_path / "train.jsonl"
    path.write_text('{"messages": []}\n')
    return path


@pytest.mark.parametrize(
    ("base_model", "template"),
    [
        ("llava-hf/llava-1.5-7b-hf", "llava"),
        ("Qwen/Qwen2-VL-7B-Instruct", "qwen2_vl"),
        ("Qwen/Qwen2.5-VL-3B-Instruct", "qwen2_vl"),
        ("google/gemma-3-4b-it", "gemma3"),
        ("google/gemma-3n-E2B-it", "gemma3n"),
        ("meta-llama/Llama-3.2-11B-Vision-Instruct", "llama3_2_vision"),
        ("mistral-community/pixtral-12b", "pixtral"),
        ("mistralai/Mistral-Small-3.1-24B-Instruct-2503", "mistral_v7_tekken"),
    ],
)
def test_family_gives_the_chat_template(base_model: str, template: str) -> None:
    assert model_family(base_model).chat_template == template


@pytest.mark.parametrize(
    "base_model", ["llava-hf/llava-1.5-7b-hf", "Qwen/Qwen2-VL-2B-Instruct", "google/gemma-3-4b-it"]
)
def test_vlm_config_has_the_multimodal_keys(base_model: str, dataset: Path, tmp_path: Path) -> None:
    settings = settings_from_values(
        {"base_model": base_model, "dataset_name": str(dataset), "output_model_name": "ft"}
    )
    config = build_axolotl_config(settings, A100, tmp_path)
    for key, value in MULTIMODAL_KEYS.items():
        assert config[key] == value
    assert config["chat_template"] == model_family(base_model).chat_template
    assert config["datasets"] == [
        {
            "path": str(dataset),
            "type": "chat_template",
            "field_messages": "messages",
            "ds_type": "json",
        }
    ]
    assert config["adapter"] == "lora"
    assert config["lora_target_modules"] == LANGUAGE_ONLY
    assert "lora_target_linear" not in config
    assert config["output_dir"] == str(tmp_path / "outputs" / "ft")
    # GPU with bf16: bf16 and tf32 on, sdpa.
    assert (config["bf16"], config["fp16"], config["tf32"]) == (True, False, True)
    assert config["attn_implementation"] == "sdpa"


def test_cpu_host_gets_cpu_safe_settings(dataset: Path, tmp_path: Path) -> None:
    settings = settings_from_values({"dataset_name": str(dataset), "output_model_name": "ft"})
    config = build_axolotl_config(settings, CPU_ONLY, tmp_path)
    assert (config["bf16"], config["fp16"], config["tf32"]) == (False, False, False)
    assert config["attn_implementation"] == "eager"
    assert config["optimizer"] == "adamw_torch"
    for kernel in ("lora_mlp_kernel", "lora_qkv_kernel", "lora_o_kernel", "lora_embedding_kernel"):
        assert config[kernel] is False


def test_precision_the_hardware_cannot_do_is_refused(dataset: Path, tmp_path: Path) -> None:
    values = {"dataset_name": str(dataset), "output_model_name": "ft", "precision": "bf16"}
    with pytest.raises(UserError) as caught:
        build_axolotl_config(settings_from_values(values), CPU_ONLY, tmp_path)
    assert caught.value.field == "precision"
    with pytest.raises(UserError, match="compute capability"):
        build_axolotl_config(settings_from_values(values), V100, tmp_path)
    auto = settings_from_values({**values, "precision": "auto"})
    assert build_axolotl_config(auto, V100, tmp_path)["fp16"] is True


def test_full_finetune_has_no_adapter(dataset: Path, tmp_path: Path) -> None:
    settings = settings_from_values(
        {"dataset_name": str(dataset), "output_model_name": "ft", "full_finetune": True}
    )
    config = build_axolotl_config(settings, A100, tmp_path)
    assert "adapter" not in config and "lora_r" not in config


def test_unknown_family_asks_for_chat_template(dataset: Path, tmp_path: Path) -> None:
    settings = settings_from_values(
        {"dataset_name": str(dataset), "output_model_name": "ft", "base_model": "acme/mystery-vlm"}
    )
    with pytest.raises(UserError) as caught:
        build_axolotl_config(settings, A100, tmp_path)
    assert caught.value.field == "chat_template"
    assert "llava, qwen2_vl" in caught.value.message
    explicit = settings_from_values({"chat_template": "qwen2_vl"}, settings)
    assert build_axolotl_config(explicit, A100, tmp_path)["chat_template"] == "qwen2_vl"


def test_loaded_yaml_keeps_its_values_and_flags_override(dataset: Path, tmp_path: Path) -> None:
    loaded = {
        "base_model": "Qwen/Qwen2-VL-2B-Instruct",
        "micro_batch_size": 1,
        "custom_key": [1, 2],
    }
    settings = settings_from_values({"batch_size": "6", "max_steps": "10"}, require_data=False)
    merged = merge_into_loaded(loaded, settings, A100, tmp_path)
    assert merged["micro_batch_size"] == 6
    assert merged["max_steps"] == 10
    assert merged["base_model"] == "Qwen/Qwen2-VL-2B-Instruct"
    assert merged["custom_key"] == [1, 2]
    assert loaded["micro_batch_size"] == 1  # the user's dict is not changed


def test_yaml_round_trips_hostile_strings(tmp_path: Path) -> None:
    config = {"base_model": "a: b\n- c", "note": "{{ template }} & *alias !!python/object"}
    path = tmp_path / "c.yml"
    path.write_text(dump_axolotl_yaml(config))
    assert yaml.safe_load(path.read_text()) == config
    assert load_axolotl_yaml(path) == config


@pytest.mark.parametrize("text", ["- just\n- a list\n", "key: [unclosed\n", "1: numeric key\n"])
def test_broken_config_files_are_user_errors(tmp_path: Path, text: str) -> None:
    path = tmp_path / "c.yml"
    path.write_text(text)
    with pytest.raises(UserError) as caught:
        load_axolotl_yaml(path)
    assert caught.value.field == "config"


def test_no_evaluation_unless_asked(dataset: Path, tmp_path: Path) -> None:
    settings = settings_from_values({"dataset_name": str(dataset), "output_model_name": "ft"})
    config = build_axolotl_config(settings, CPU_ONLY, tmp_path)
    assert config["val_set_size"] == 0.0
    assert not {"test_datasets", "eval_strategy", "eval_steps", "evals_per_epoch"} & set(config)


def test_a_validation_share_is_evaluated_four_times_an_epoch_or_every_n_steps(
    dataset: Path, tmp_path: Path
) -> None:
    values = {"dataset_name": str(dataset), "output_model_name": "ft", "val_set_size": "0.1"}
    config = build_axolotl_config(settings_from_values(values), CPU_ONLY, tmp_path)
    assert (config["val_set_size"], config["evals_per_epoch"]) == (0.1, 4)
    every = build_axolotl_config(
        settings_from_values({**values, "eval_steps": "25"}), CPU_ONLY, tmp_path
    )
    assert (every["eval_strategy"], every["eval_steps"]) == ("steps", 25)
    assert "evals_per_epoch" not in every


def test_an_eval_dataset_becomes_axolotls_test_datasets(dataset: Path, tmp_path: Path) -> None:
    values = {"dataset_name": str(dataset), "output_model_name": "ft", "eval_dataset": str(dataset)}
    config = build_axolotl_config(settings_from_values(values), CPU_ONLY, tmp_path)
    assert config["test_datasets"] == [{**config["datasets"][0], "split": "train"}]
    assert config["val_set_size"] == 0.0 and config["evals_per_epoch"] == 4
