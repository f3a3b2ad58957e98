"""The axolotl config builder: multimodal keys per family, safe precision, --config merge."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from vlm_tui.core.errors import UserError
from vlm_tui.core.host.hardware import CPU_ONLY, Hardware
from vlm_tui.core.request.axolotl_config import (
    build_axolotl_config,
    dump_axolotl_yaml,
    load_axolotl_yaml,
    merge_into_loaded,
)
from vlm_tui.core.request.model_family import model_family
from vlm_tui.core.request.settings import settings_from_values

A100 = Hardware(gpu_names=("NVIDIA A100-SXM4-80GB",), min_compute_capability=(8, 0))
V100 = Hardware(gpu_names=("Tesla V100-SXM2-32GB",), min_compute_capability=(7, 0))
MULTIMODAL_KEYS = {
    "processor_type": "AutoProcessor",
    "skip_prepare_dataset": True,
    "remove_unused_columns": False,
    "sample_packing": False,
}
LANGUAGE_ONLY = (
    r"model\.language_model\.layers\.[\d]+\.(mlp|cross_attn|self_attn|feed_forward"
    r"|feed_forward\.shared_expert)\.(up|down|gate|q|k|v|o)_proj"
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
        ("HuggingFaceM4/Idefics3-8B-Llama3", "tokenizer_default"),
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


def local_model(folder: Path, config: dict[str, object]) -> str:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config))
    return str(folder)


@pytest.mark.parametrize(
    ("config", "template", "prefix"),
    [
        ({"model_type": "llava_next"}, "llava", "model.language_model"),
        ({"model_type": "qwen3_vl"}, "qwen2_vl", "model.language_model"),
        ({"model_type": "mllama"}, "llama3_2_vision", "model.language_model"),
        ({"model_type": "mistral3"}, "mistral_v7_tekken", "model.language_model"),
        # Mistral 3's tower is Pixtral's too; only a LLaVA's says Pixtral-12B.
        (
            {"model_type": "mistral3", "vision_config": {"model_type": "pixtral"}},
            "mistral_v7_tekken",
            "model.language_model",
        ),
        # Pixtral-12B: a LLaVA whose vision tower says what it is.
        ({"model_type": "llava", "vision_config": {"model_type": "pixtral"}}, "pixtral", None),
        ({"model_type": "idefics3"}, "tokenizer_default", "model.text_model"),
    ],
)
def test_a_local_folder_s_config_decides_over_its_name(
    config: dict[str, object], template: str, prefix: str | None, tmp_path: Path
) -> None:
    # The folder's name says llava; its config.json says otherwise and wins.
    family = model_family(local_model(tmp_path / "my-llava-copy", config))
    assert family.chat_template == template
    if prefix is not None:
        assert family.lora_target_modules.startswith(re.escape(prefix) + r"\.layers\.")


def test_the_llava_template_gets_role_boundaries_so_only_answers_train(
    dataset: Path, tmp_path: Path
) -> None:
    settings = settings_from_values(
        {
            "base_model": "llava-hf/llava-1.5-7b-hf",
            "dataset_name": str(dataset),
            "output_model_name": "ft",
        }
    )
    config = build_axolotl_config(settings, A100, tmp_path)
    # The assistant's turns only, each marker with and without the space before it.
    assert config["role_boundaries"] == [
        {"role": "assistant", "start": "ASSISTANT:", "end": "USER:", "include_end": False},
        {"role": "assistant", "start": " ASSISTANT:", "end": " USER:", "include_end": False},
    ]
    # Families whose axolotl strategy has its own markers get none.
    qwen = settings_from_values({"base_model": "Qwen/Qwen2-VL-2B-Instruct"}, settings)
    assert "role_boundaries" not in build_axolotl_config(qwen, A100, tmp_path)


def test_the_target_adapts_the_language_model_s_projections_only() -> None:
    target = model_family("llava-hf/llava-1.5-7b-hf").lora_target_modules
    for name, adapted in [
        ("model.language_model.layers.0.self_attn.q_proj", True),
        ("model.language_model.layers.11.mlp.down_proj", True),
        ("model.language_model.layers.3.cross_attn.o_proj", True),
        ("model.language_model.layers.0.feed_forward.shared_expert.up_proj", True),
        ("model.language_model.layers.0.feed_forward.router", False),
        ("model.vision_tower.vision_model.encoder.layers.0.self_attn.q_proj", False),
        ("model.multi_modal_projector.linear_1", False),
        ("model.language_model.layers.0.self_attn.q_proj.lora_A", False),
    ]:
        assert (re.fullmatch(target, name) is not None) == adapted, name


def test_tokenizer_default_is_offered_for_families_without_an_axolotl_template() -> None:
    settings = settings_from_values({"chat_template": "tokenizer_default"}, require_data=False)
    assert settings.chat_template == "tokenizer_default"


def test_idefics3_gets_its_turn_markers_and_smolvlm_is_refused_with_the_reason(
    tmp_path: Path,
) -> None:
    idefics3 = model_family(local_model(tmp_path / "a", {"model_type": "idefics3"}))
    assert [b["start"] for b in idefics3.role_boundaries] == ["Assistant:", " Assistant:"]
    assert {b["end"] for b in idefics3.role_boundaries} == {"<end_of_utterance>"}
    # The tokenizer's own template names no markers for a model of another family.
    assert model_family("org/other.invalid", "tokenizer_default").role_boundaries == ()
    with pytest.raises(UserError) as refused:
        model_family(local_model(tmp_path / "b", {"model_type": "smolvlm"}))
    assert refused.value.field == "base_model"
    assert "additional_special_tokens_ids" in str(refused.value)
    with pytest.raises(UserError):
        model_family("HuggingFaceTB/SmolVLM2-2.2B-Instruct")
