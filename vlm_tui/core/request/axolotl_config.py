"""Settings + hardware -> the axolotl YAML for a vision-language fine-tune.

The keys follow what axolotl 0.19 needs for multimodal training (processor, no dataset
preparation, no sample packing, the family's chat template) and what the hardware can do: a
host without a GPU gets fp32, eager attention and the plain AdamW. The YAML is always written by a
serialiser, never by filling a template, so no value can inject keys.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from vlm_tui.core.errors import UserError
from vlm_tui.core.host.hardware import Hardware
from vlm_tui.core.request.model_family import model_family
from vlm_tui.core.request.settings import Settings, validate_field
from vlm_tui.core.request.trackers import (
    NO_TRACKER,
    PROJECT_KEYS,
    RUN_NAME_KEYS,
    TRACKER_KEYS,
    tracked_by,
    tracker_keys,
)

OUTPUTS_FOLDER = "outputs"
# Evaluations an epoch when the user asked for a validation split but no interval.
EVALS_PER_EPOCH = 4
_DATASET_FILE_TYPES = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}

_EVAL_KEYS = ("val_set_size", "test_datasets", "eval_strategy", "eval_steps", "evals_per_epoch")
# Which axolotl keys each setting decides; with `--config` only the settings the user gave
# replace these keys in the loaded YAML.
FIELD_KEYS: dict[str, tuple[str, ...]] = {
    "base_model": ("base_model", "chat_template", "role_boundaries"),
    "dataset_name": ("datasets",),
    "output_model_name": ("output_dir",),
    "chat_template": ("chat_template", "role_boundaries"),
    "num_epochs": ("num_epochs",),
    "max_steps": ("max_steps",),
    "batch_size": ("micro_batch_size",),
    "gradient_accumulation_steps": ("gradient_accumulation_steps",),
    "learning_rate": ("learning_rate",),
    "lr_scheduler": ("lr_scheduler",),
    "warmup_ratio": ("warmup_ratio",),
    "full_finetune": ("adapter", "lora_r", "lora_alpha", "lora_dropout", "lora_target_modules"),
    "lora_r": ("lora_r",),
    "lora_alpha": ("lora_alpha",),
    "lora_dropout": ("lora_dropout",),
    "sequence_len": ("sequence_len",),
    "image_size": ("image_size",),
    "precision": ("bf16", "fp16", "tf32", "attn_implementation", "optimizer"),
    "gradient_checkpointing": ("gradient_checkpointing",),
    "seed": ("seed",),
    "save_strategy": ("save_strategy", "save_steps"),
    "save_steps": ("save_steps",),
    "logging_steps": ("logging_steps",),
    # Evaluation: whichever of these the three settings decide together.
    "val_set_size": _EVAL_KEYS,
    "eval_dataset": _EVAL_KEYS,
    "eval_steps": _EVAL_KEYS,
    "report_to": TRACKER_KEYS,
    "tracker_project": tuple(PROJECT_KEYS.values()),
    "tracker_run_name": tuple(RUN_NAME_KEYS.values()),
}


# "Checkpoint now": rank 0 looks for this file in output_dir after every step (one stat call).
CHECKPOINT_TRIGGER_FILE = "axolotl_checkpoint.save"
CHECKPOINT_ON_REQUEST = {"enabled": True, "check_interval": 1}


def output_dir_for(name: str, workdir: Path) -> Path:
    return (workdir / OUTPUTS_FOLDER / name).resolve()


def _precision_keys(precision: str, hardware: Hardware) -> dict[str, Any]:
    if hardware.gpu_count == 0:
        if precision in ("bf16", "fp16"):
            raise UserError(
                "precision",
                f"{precision} needs a GPU and this host has none; allowed here: auto, fp32",
            )
        # bf16/tf32 raise on a CPU and `bf16: auto` turns fp16 on: everything explicit.
        return {
            "bf16": False,
            "fp16": False,
            "tf32": False,
            "attn_implementation": "eager",
            "optimizer": "adamw_torch",
        }
    if precision == "auto":
        precision = "bf16" if hardware.supports_bf16 else "fp16"
    if precision == "bf16" and not hardware.supports_bf16:
        raise UserError(
            "precision",
            "bf16 needs compute capability 8.0 or newer; allowed here: auto, fp16, fp32",
        )
    return {
        "bf16": precision == "bf16",
        "fp16": precision == "fp16",
        "tf32": hardware.supports_bf16,
        "attn_implementation": "sdpa",
        "optimizer": "adamw_torch_fused",
    }


def _dataset_entry(dataset: str) -> dict[str, Any]:
    entry: dict[str, Any] = {"path": dataset, "type": "chat_template", "field_messages": "messages"}
    file_type = _DATASET_FILE_TYPES.get(Path(dataset).suffix.lower())
    # Validated local paths are absolute; hub ids never are.
    if file_type and Path(dataset).is_absolute():
        entry["ds_type"] = file_type
    return entry


def _evaluation_keys(settings: Settings) -> dict[str, Any]:
    """A held-out share or a dataset of its own, evaluated every N steps or 4 times an epoch."""
    keys: dict[str, Any] = {}
    if settings.eval_dataset is not None:
        # axolotl reads the rows of a local file as its "train" split, whatever they are for.
        keys["test_datasets"] = [{**_dataset_entry(settings.eval_dataset), "split": "train"}]
    if settings.eval_dataset is None and not settings.val_set_size:
        return keys
    if settings.eval_steps is not None:
        keys |= {"eval_strategy": "steps", "eval_steps": settings.eval_steps}
    else:
        keys["evals_per_epoch"] = EVALS_PER_EPOCH
    return keys


def build_axolotl_config(
    settings: Settings,
    hardware: Hardware,
    workdir: Path,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A complete axolotl config dict for `settings` on `hardware`; `environ` decides where the
    trackers record (a tracking server or wandb key there wins over the local defaults)."""
    family = model_family(settings.base_model, settings.chat_template)
    config: dict[str, Any] = {
        "base_model": settings.base_model,
        # Multimodal: the processor prepares images, so axolotl must not pre-tokenise or pack.
        "processor_type": "AutoProcessor",
        "chat_template": family.chat_template,
        "skip_prepare_dataset": True,
        "remove_unused_columns": False,
        "sample_packing": False,
        "datasets": [_dataset_entry(settings.dataset_name)],
        "val_set_size": settings.val_set_size,
        "sequence_len": settings.sequence_len,
        "micro_batch_size": settings.batch_size,
        "gradient_accumulation_steps": settings.gradient_accumulation_steps,
        "num_epochs": settings.num_epochs,
        "learning_rate": settings.learning_rate,
        "lr_scheduler": settings.lr_scheduler,
        "warmup_ratio": settings.warmup_ratio,
        "gradient_checkpointing": settings.gradient_checkpointing,
        "seed": settings.seed,
        "logging_steps": settings.logging_steps,
        "save_strategy": settings.save_strategy,
        "output_dir": str(output_dir_for(settings.output_model_name, workdir)),
        # The fused LoRA kernels do not know the VLM attention classes ("no attribute
        # 'LlavaAttention'"), so they stay off for every family.
        "lora_mlp_kernel": False,
        "lora_qkv_kernel": False,
        "lora_o_kernel": False,
        "lora_embedding_kernel": False,
        "dynamic_checkpoint": dict(CHECKPOINT_ON_REQUEST),
    }
    if family.role_boundaries:
        # Only the assistant's tokens carry labels (axolotl's default roles_to_train).
        config["role_boundaries"] = [dict(boundary) for boundary in family.role_boundaries]
    config.update(_precision_keys(settings.precision, hardware))
    config.update(_evaluation_keys(settings))
    if settings.max_steps is not None:
        config["max_steps"] = settings.max_steps
    if settings.save_steps is not None:
        config["save_steps"] = settings.save_steps
    if settings.image_size is not None:
        config["image_size"] = settings.image_size
    if not settings.full_finetune:
        config.update(
            {
                "adapter": "lora",
                "lora_r": settings.lora_r,
                "lora_alpha": settings.lora_alpha,
                "lora_dropout": settings.lora_dropout,
                # LoRA on the language model only (lora_target_linear would adapt the vision tower).
                "lora_target_modules": family.lora_target_modules,
            }
        )
    project = settings.tracker_project or settings.output_model_name or Path(workdir).name
    config.update(
        tracker_keys(settings.report_to, project, settings.tracker_run_name, workdir, environ or {})
    )
    return config


def merge_into_loaded(
    loaded: Mapping[str, Any],
    settings: Settings,
    hardware: Hardware,
    workdir: Path,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The user's own YAML with only the settings they gave explicitly laid over it."""
    merged = copy.deepcopy(dict(loaded))
    # Axolotl derives a logging interval from the run length when none is set; step numbers are
    # only exact when we know it, so an absent one becomes explicit.
    merged.setdefault("logging_steps", settings.logging_steps)
    merged.setdefault("dynamic_checkpoint", dict(CHECKPOINT_ON_REQUEST))
    if not settings.explicit:
        return merged
    built = build_axolotl_config(settings, hardware, workdir, environ)
    for name in sorted(settings.explicit):
        for key in FIELD_KEYS.get(name, ()):
            if key in built:
                merged[key] = built[key]
            else:
                merged.pop(key, None)
    return merged


def load_axolotl_yaml(path: Path) -> dict[str, Any]:
    """Read an existing axolotl config; a broken file is the user's `config` field error."""
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise UserError("config", f"cannot read {str(path)!r}: {error}") from None
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise UserError("config", f"{str(path)!r} is not valid YAML{line}") from None
    if not isinstance(loaded, dict) or not all(isinstance(key, str) for key in loaded):
        raise UserError("config", f"{str(path)!r} must hold a mapping of axolotl keys")
    return loaded


def dump_axolotl_yaml(config: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(config), sort_keys=False, allow_unicode=True, width=1000)


# The axolotl key each form field is read back from when a YAML is loaded into the form.
_READ_BACK = {
    "base_model": "base_model",
    "chat_template": "chat_template",
    "num_epochs": "num_epochs",
    "max_steps": "max_steps",
    "batch_size": "micro_batch_size",
    "gradient_accumulation_steps": "gradient_accumulation_steps",
    "learning_rate": "learning_rate",
    "lr_scheduler": "lr_scheduler",
    "warmup_ratio": "warmup_ratio",
    "lora_r": "lora_r",
    "lora_alpha": "lora_alpha",
    "lora_dropout": "lora_dropout",
    "sequence_len": "sequence_len",
    "image_size": "image_size",
    "gradient_checkpointing": "gradient_checkpointing",
    "seed": "seed",
    "save_strategy": "save_strategy",
    "save_steps": "save_steps",
    "logging_steps": "logging_steps",
    "val_set_size": "val_set_size",
    "eval_steps": "eval_steps",
}


def settings_values_from_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """What a loaded YAML says about each form field, where our validators accept it.

    Values they refuse are left out: the form keeps its own, and the YAML's value still
    applies at launch unless the user edits that field.
    """
    raw: dict[str, object] = {
        name: config[key] for name, key in _READ_BACK.items() if config.get(key) is not None
    }
    datasets = config.get("datasets")
    if isinstance(datasets, list) and datasets and isinstance(datasets[0], dict):
        raw["dataset_name"] = datasets[0].get("path")
    tests = config.get("test_datasets")
    if isinstance(tests, list) and tests and isinstance(tests[0], dict):
        raw["eval_dataset"] = tests[0].get("path")
    output = config.get("output_dir")
    if isinstance(output, str) and output.strip():
        raw["output_model_name"] = Path(output.rstrip("/")).name
    raw["full_finetune"] = not config.get("adapter")
    raw["report_to"] = ",".join(tracked_by(config)) or NO_TRACKER
    projects = [config[key] for key in PROJECT_KEYS.values() if config.get(key)]
    if projects:
        raw["tracker_project"] = projects[0]
    if config.get("bf16") is True:
        raw["precision"] = "bf16"
    elif config.get("fp16") is True:
        raw["precision"] = "fp16"
    values: dict[str, Any] = {}
    for name, value in raw.items():
        try:
            values[name] = validate_field(name, value)
        except UserError:
            continue
    return values
