"""What the user asks for, validated once for the CLI, the form and presets.

Every field is described in `FIELDS`: its flag, default, help and validator. The CLI builds its
flags from that table and the TUI builds its form from it, so both front-ends accept and refuse
exactly the same values.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from vlm_tui.core.errors import UserError
from vlm_tui.core.request.trackers import NO_TRACKER, TRACKERS, report_to, tracker_name

DEFAULT_BASE_MODEL = "llava-hf/llava-1.5-7b-hf"

# Chat templates axolotl 0.19 ships for vision-language models.
CHAT_TEMPLATES = (
    "llava",
    "qwen2_vl",
    "gemma3",
    "gemma3n",
    "llama3_2_vision",
    "llama4",
    "pixtral",
    "mistral_v7_tekken",
    # The tokenizer's own template, for families axolotl has none for (Idefics3, SmolVLM).
    "tokenizer_default",
)
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
SAVE_STRATEGIES = ("epoch", "steps", "no")
LR_SCHEDULERS = ("cosine", "linear", "constant")

# A hub id: "name" or "owner/name", the characters the hub allows.
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}(/[A-Za-z0-9][A-Za-z0-9_.-]{0,95})?$")
# One folder name: no separators, no leading dot or dash, nothing a shell or YAML reads specially.
_FOLDER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
# Numbers as a person types them: ASCII digits only. int() and float() also read "1_000",
# Arabic-Indic or full-width digits, which no YAML reader or launcher would.
_WHOLE = re.compile(r"[+-]?[0-9]{1,30}", re.ASCII)
_DECIMAL = re.compile(
    r"[+-]?(?:[0-9]{1,30}(?:\.[0-9]{0,30})?|\.[0-9]{1,30})(?:[eE][+-]?[0-9]{1,4})?"
)
_DATASET_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv", ".arrow")


Validator = Callable[[object], Any]
# Paths in messages are shown whole unless absurdly long.
PATH_SHOWN = 400


def _text(value: object) -> str:
    """The value as stripped text; YAML and the form may hand us non-strings."""
    if isinstance(value, bool) or value is None:
        raise ValueError("must not be empty")
    text = str(value).strip()
    if not text:
        raise ValueError("must not be empty")
    if "\x00" in text:
        raise ValueError("must not contain NUL characters")
    return text


def int_in(low: int, high: int) -> Validator:
    def check(value: object) -> int:
        if isinstance(value, bool):
            raise ValueError(f"must be a whole number from {low} to {high}")
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, int):
            number = value
        else:
            text = str(value).strip()
            if not _WHOLE.fullmatch(text):
                raise ValueError(f"must be a whole number from {low} to {high}")
            number = int(text, 10)
        if not low <= number <= high:
            raise ValueError(f"must be a whole number from {low} to {high}")
        return number

    return check


def float_in(
    low: float, high: float, *, low_open: bool = False, high_open: bool = False
) -> Validator:
    left = "(" if low_open else "["
    right = ")" if high_open else "]"
    allowed = f"must be a finite number in {left}{low:g}, {high:g}{right}"

    def check(value: object) -> float:
        if isinstance(value, bool):
            raise ValueError(allowed)
        if isinstance(value, int | float):
            try:
                number = float(value)
            except OverflowError:  # an int too large for a float
                raise ValueError(allowed) from None
        else:
            text = str(value).strip()
            if not _DECIMAL.fullmatch(text):
                raise ValueError(allowed)
            number = float(text)
        if not math.isfinite(number):
            raise ValueError(allowed)
        number += 0.0  # -0.0 is written as 0.0
        too_low = number <= low if low_open else number < low
        too_high = number >= high if high_open else number > high
        if too_low or too_high:
            raise ValueError(allowed)
        return number

    return check


def one_of(choices: tuple[str, ...]) -> Validator:
    def check(value: object) -> str:
        text = _text(value).lower()
        if text not in choices:
            raise ValueError(f"must be one of: {', '.join(choices)}")
        return text

    return check


def boolean(value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = _text(value).lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be true or false")


def folder_name(value: object) -> str:
    text = _text(value)
    if not _FOLDER_NAME.fullmatch(text) or text.endswith("."):
        raise ValueError(
            "must be one folder name of 1-100 characters: letters, digits, '.', '_' or '-',"
            " starting with a letter or digit"
        )
    return text


def _looks_like_path(text: str) -> bool:
    return (
        text.startswith(("/", "./", "../", "~"))
        or text.count("/") > 1
        or "\\" in text
        or text.lower().endswith(_DATASET_SUFFIXES)
    )


def _local(text: str) -> Path:
    """The text as a local path, "~" expanded; ValueError when the system cannot look it up."""
    try:
        path = Path(text).expanduser()
        # A name too long for the file system, a folder we may not enter: say so in one line.
        path.exists()
    except RuntimeError:  # "~someone" for a user this system does not know
        raise ValueError(
            f"{_shown(text, PATH_SHOWN)} names a home folder that does not exist"
        ) from None
    except OSError as error:
        raise ValueError(
            f"cannot look up {_shown(text, PATH_SHOWN)}: {error.strerror or error}"
        ) from None
    return path


def model_reference(value: object) -> str:
    """A hub model id, or a local folder that exists (returned absolute)."""
    text = _text(value)
    local = _local(text)
    if local.is_dir():
        return str(local.resolve())
    if _looks_like_path(text):
        raise ValueError(f"local model folder {_shown(text, PATH_SHOWN)} does not exist")
    if not _HUB_ID.fullmatch(text):
        raise ValueError("must be a hub model id like 'owner/name' or an existing local folder")
    return text


def dataset_reference(value: object) -> str:
    """A hub dataset id, or a local JSONL/JSON/Parquet/CSV file or folder that exists."""
    text = _text(value)
    local = _local(text)
    if local.is_file():
        if not local.name.lower().endswith(_DATASET_SUFFIXES):
            raise ValueError(
                f"local dataset file must end in one of: {', '.join(_DATASET_SUFFIXES)}"
            )
        return str(local.resolve())
    if local.is_dir():
        return str(local.resolve())
    if _looks_like_path(text):
        raise ValueError(f"local dataset {_shown(text, PATH_SHOWN)} does not exist")
    if not _HUB_ID.fullmatch(text):
        raise ValueError(
            "must be a hub dataset id like 'owner/name' or an existing local file or folder"
        )
    return text


def validation_size(value: object) -> float | int:
    """A share of the rows in [0, 1) (0: no validation split), or a row count of at least 1."""
    allowed = "must be a share of the rows from 0 to below 1 (0.05) or a row count (200)"
    if isinstance(value, bool):
        raise ValueError(allowed)
    text = str(value).strip()
    if isinstance(value, int) or _WHOLE.fullmatch(text):
        count = int(text, 10)
        if count == 0:
            return 0.0
        if not 1 <= count <= 10_000_000:
            raise ValueError(allowed)
        return count
    if isinstance(value, float) and value.is_integer() and value >= 1:
        return int(value)
    try:
        share = float_in(0.0, 1.0, high_open=True)(value)
    except ValueError:
        raise ValueError(allowed) from None
    return float(share)


def config_file(value: object) -> str:
    text = _text(value)
    path = _local(text)
    if not path.is_file():
        raise ValueError(f"file {_shown(text, PATH_SHOWN)} does not exist")
    return str(path.resolve())


def optional(validator: Validator) -> Validator:
    """Empty text means "not set" (None); the form sends empty strings for blank fields."""

    def check(value: object) -> Any:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        return validator(value)

    return check


@dataclass(frozen=True)
class FieldSpec:
    name: str
    validator: Validator
    help: str
    group: str
    is_flag: bool = False  # a switch: `--full_finetune` takes no value
    # The allowed values of a one-of field, so a form can offer a list instead of free text.
    choices: tuple[str, ...] = ()


FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("base_model", model_reference, "hub model id or local model folder", "model"),
    FieldSpec(
        "dataset_name", dataset_reference, "hub dataset id, or a local JSONL file or folder", "data"
    ),
    FieldSpec("output_model_name", folder_name, "name of the fine-tuned model folder", "data"),
    FieldSpec(
        "val_set_size",
        validation_size,
        "rows held out for evaluation: a share (0.05) or a count (200); 0 for none",
        "data",
    ),
    FieldSpec(
        "eval_dataset",
        optional(dataset_reference),
        "a separate dataset to evaluate on (instead of a share of the training rows)",
        "data",
    ),
    FieldSpec(
        "eval_steps",
        optional(int_in(1, 10_000_000)),
        "steps between evaluations (default: 4 per epoch)",
        "data",
    ),
    FieldSpec(
        "chat_template",
        optional(one_of(CHAT_TEMPLATES)),
        "chat template; chosen from the base model when not given",
        "model",
        choices=CHAT_TEMPLATES,
    ),
    FieldSpec("num_epochs", int_in(1, 10_000), "passes over the dataset", "training"),
    FieldSpec(
        "max_steps", optional(int_in(1, 10_000_000)), "stop after this many steps", "training"
    ),
    FieldSpec("batch_size", int_in(1, 4096), "micro batch size per process", "training"),
    FieldSpec("gradient_accumulation_steps", int_in(1, 4096), "micro batches per step", "training"),
    FieldSpec("learning_rate", float_in(0.0, 1.0, low_open=True), "peak learning rate", "training"),
    FieldSpec(
        "lr_scheduler",
        one_of(LR_SCHEDULERS),
        "learning-rate schedule",
        "training",
        choices=LR_SCHEDULERS,
    ),
    FieldSpec(
        "warmup_ratio", float_in(0.0, 1.0, high_open=True), "share of steps warming up", "training"
    ),
    FieldSpec(
        "full_finetune", boolean, "train all weights instead of a LoRA adapter", "lora", True
    ),
    FieldSpec("lora_r", int_in(1, 1024), "LoRA rank", "lora"),
    FieldSpec("lora_alpha", int_in(1, 4096), "LoRA alpha", "lora"),
    FieldSpec("lora_dropout", float_in(0.0, 1.0, high_open=True), "LoRA dropout", "lora"),
    FieldSpec("sequence_len", int_in(16, 1_048_576), "maximum tokens per sample", "model"),
    FieldSpec(
        "image_size",
        optional(int_in(8, 8192)),
        "resize images to this many pixels a side (processor default when empty)",
        "model",
    ),
    FieldSpec(
        "precision",
        one_of(PRECISIONS),
        "auto picks what the hardware supports",
        "model",
        choices=PRECISIONS,
    ),
    FieldSpec("gradient_checkpointing", boolean, "trade compute for memory", "training", True),
    FieldSpec("seed", int_in(0, 2**32 - 1), "random seed", "training"),
    FieldSpec(
        "save_strategy",
        one_of(SAVE_STRATEGIES),
        "when to save checkpoints",
        "training",
        choices=SAVE_STRATEGIES,
    ),
    FieldSpec(
        "save_steps", optional(int_in(1, 10_000_000)), "steps between checkpoints", "training"
    ),
    FieldSpec("logging_steps", int_in(1, 100_000), "steps between logged losses", "training"),
    FieldSpec(
        "report_to",
        report_to,
        f"where metrics go besides the run folder: {NO_TRACKER}, or a comma list of"
        f" {', '.join(TRACKERS)} (recorded locally unless the environment names a server)",
        "tracking",
    ),
    FieldSpec(
        "tracker_project",
        optional(tracker_name),
        "the trackers' project or experiment (default: output_model_name)",
        "tracking",
    ),
    FieldSpec(
        "tracker_run_name",
        optional(tracker_name),
        "the run's name in the trackers (default: the run folder's name)",
        "tracking",
    ),
    FieldSpec(
        "gpus_per_node",
        optional(int_in(1, 1024)),
        "processes per node (default: NPROC_PER_NODE, else the GPUs this node sees)",
        "distributed",
    ),
    FieldSpec(
        "rendezvous_timeout",
        int_in(5, 86_400),
        "seconds nodes wait for each other at start before giving up",
        "distributed",
    ),
)
FIELDS_BY_NAME = {spec.name: spec for spec in FIELDS}


@dataclass(frozen=True)
class Settings:
    """One training job as the user described it; every value already validated."""

    base_model: str = DEFAULT_BASE_MODEL
    dataset_name: str = ""
    output_model_name: str = ""
    val_set_size: float | int = 0.0
    eval_dataset: str | None = None
    eval_steps: int | None = None
    chat_template: str | None = None
    num_epochs: int = 3
    max_steps: int | None = None
    batch_size: int = 2
    gradient_accumulation_steps: int = 1
    learning_rate: float = 2e-4
    lr_scheduler: str = "cosine"
    warmup_ratio: float = 0.03
    full_finetune: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    sequence_len: int = 2048
    image_size: int | None = None
    precision: str = "auto"
    gradient_checkpointing: bool = False
    seed: int = 42
    save_strategy: str = "epoch"
    save_steps: int | None = None
    logging_steps: int = 1
    report_to: str = NO_TRACKER
    tracker_project: str | None = None
    tracker_run_name: str | None = None
    gpus_per_node: int | None = None
    rendezvous_timeout: int = 600
    # The fields the user set (flags, form edits), as opposed to defaults; with `--config` only
    # these override the loaded YAML.
    explicit: frozenset[str] = field(default=frozenset(), compare=False)


def validate_field(name: str, value: object) -> Any:
    """Check one value; raises UserError naming the field and what is allowed."""
    spec = FIELDS_BY_NAME.get(name)
    if spec is None:
        raise UserError(name, "unknown setting")
    try:
        return spec.validator(value)
    except ValueError as error:
        raise UserError(name, f"{error} (got {_shown(value)})") from None


def _shown(value: object, limit: int = 60) -> str:
    """The value quoted for a message: escapes for control characters, at most `limit` long."""
    text = repr(value) if isinstance(value, str) else repr(str(value))
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def settings_from_values(
    values: Mapping[str, object], base: Settings | None = None, *, require_data: bool = True
) -> Settings:
    """Validate raw values (strings from flags or the form, or typed values) into Settings.

    Raises UserError at the first bad value, so the message names exactly one field.
    """
    checked = {name: validate_field(name, value) for name, value in values.items()}
    start = base or Settings()
    settings = replace(start, **checked, explicit=start.explicit | frozenset(checked))
    check_consistency(settings, require_data=require_data)
    return settings


def check_consistency(settings: Settings, *, require_data: bool = True) -> None:
    """Rules that tie fields together."""
    if require_data and not settings.dataset_name:
        raise UserError("dataset_name", "is required: a hub dataset id or a local JSONL file")
    if require_data and not settings.output_model_name:
        raise UserError("output_model_name", "is required: one folder name for the trained model")
    if settings.save_strategy == "steps" and settings.save_steps is None:
        raise UserError("save_steps", "is required when save_strategy is 'steps'")
    if settings.save_strategy != "steps" and settings.save_steps is not None:
        raise UserError("save_steps", "only applies when save_strategy is 'steps'")
    if settings.eval_dataset is not None and settings.val_set_size:
        raise UserError(
            "eval_dataset", "give val_set_size or eval_dataset, not both (set val_set_size to 0)"
        )
    if settings.eval_steps is not None and not (settings.eval_dataset or settings.val_set_size):
        raise UserError("eval_steps", "only applies with val_set_size or eval_dataset")
    for name in ("tracker_project", "tracker_run_name"):
        if getattr(settings, name) is not None and settings.report_to == NO_TRACKER:
            raise UserError(name, "only applies with report_to naming a tracker")


def settings_as_dict(settings: Settings) -> dict[str, object]:
    """Plain values for presets and run records (no bookkeeping fields)."""
    return {f.name: getattr(settings, f.name) for f in fields(settings) if f.name != "explicit"}
