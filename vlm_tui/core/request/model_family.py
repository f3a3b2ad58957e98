"""Which chat template, language-model layers and role markers belong to a base model.

Axolotl needs the chat template of the model's family, and LoRA must adapt only the language
model (adapting the vision tower too costs memory and rarely helps). Where transformers 5 puts
the language model differs by family (`model.language_model`, Idefics3's `model.text_model`):
the prefix here is the guess a dry run shows, and a launch replaces it with the one found in the
model itself (vlm_tui/training/model_layers.py) whenever the model's config can be read.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlm_tui.core.errors import UserError
from vlm_tui.core.request.settings import CHAT_TEMPLATES

# The Linear modules of a decoder layer LoRA adapts (Mllama's cross-attention layers included);
# a router (`gate`, `router`) and fused MoE experts are not Linear leaves named like these.
LAYER_LINEAR = (
    r"(mlp|cross_attn|self_attn|feed_forward|feed_forward\.shared_expert)"
    r"\.(up|down|gate|q|k|v|o)_proj"
)

_LANGUAGE_MODEL = "model.language_model"
# The families whose language model lives elsewhere at run time, by chat template.
_LANGUAGE_PREFIX = {"tokenizer_default": "model.text_model", "llama4": "language_model.model"}

# Name fragments (lower case, '_' and '.' read as '-') in the order they are tried: the more
# specific first, since "gemma-3n" also contains "gemma-3".
_NAME_HINTS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("qwen2-vl", "qwen2-5-vl", "qwen3-vl", "qvq"), "qwen2_vl"),
    (("gemma-3n", "gemma3n"), "gemma3n"),
    (("gemma-3", "gemma3", "medgemma"), "gemma3"),
    (("llama-3-2-11b-vision", "llama-3-2-90b-vision", "llama-3-2-vision"), "llama3_2_vision"),
    (("llama-4", "llama4"), "llama4"),
    (("pixtral",), "pixtral"),
    (
        ("mistral-small-3-1", "mistral-small-3-2", "mistral-small-2503", "mistral-small-2506"),
        "mistral_v7_tekken",
    ),
    (("llava",), "llava"),
)

# model_type in a local model's config.json.
_MODEL_TYPES = {
    "llava": "llava",
    "llava_next": "llava",
    "qwen2_vl": "qwen2_vl",
    "qwen2_5_vl": "qwen2_vl",
    "qwen3_vl": "qwen2_vl",
    "gemma3": "gemma3",
    "gemma3n": "gemma3n",
    "mllama": "llama3_2_vision",
    "llama4": "llama4",
    "mistral3": "mistral_v7_tekken",
    # No axolotl template of their own: the tokenizer's.
    "idefics3": "tokenizer_default",
    "smolvlm": "tokenizer_default",
}
# Pixtral-12B is a LLaVA model with a Pixtral vision tower: its config says so one level down.
_VISION_MODEL_TYPES = {"pixtral": "pixtral"}
_MODEL_TYPES.update(_VISION_MODEL_TYPES)


# Where axolotl 0.19's strategy for a family has no role markers (LLaVA; Idefics3, which it
# treats as any model), every token of the user's turn is trained on too ("ProcessingStrategy
# has no built-in role boundaries"). These mark the assistant's turns only: a token outside
# every marked span carries no label, so the prompt and the system text stay masked. Each
# marker comes as written and with the space before it, since a tokenizer may read " ASSISTANT"
# as one piece in the running text and "ASSISTANT" as another alone (the demo's does).
def _assistant_turns(start: str, end: str, *, include_end: bool) -> tuple[dict[str, Any], ...]:
    return tuple(
        {
            "role": "assistant",
            "start": space + start,
            "end": space + end,
            "include_end": include_end,
        }
        for space in ("", " ")
    )


# LLaVA: "USER: ... ASSISTANT: answer USER: ..."; the next turn's marker ends the answer.
_LLAVA_TURNS = _assistant_turns("ASSISTANT:", "USER:", include_end=False)
# Idefics3: "Assistant: answer<end_of_utterance>", the end trained on so the model stops.
_IDEFICS3_TURNS = tuple(
    {"role": "assistant", "start": start, "end": "<end_of_utterance>", "include_end": True}
    for start in ("Assistant:", " Assistant:")
)
_ROLE_BOUNDARIES = {"llava": _LLAVA_TURNS, "idefics3": _IDEFICS3_TURNS}

# Families axolotl 0.19 cannot train, refused before launch with the reason.
_UNSUPPORTED = {
    "smolvlm": (
        "SmolVLM cannot be fine-tuned with axolotl 0.19 and transformers 5: axolotl's SmolVLM"
        " strategy reads the tokenizer's additional_special_tokens_ids, which transformers 5"
        " removed, and fails before step 0 (Idefics3 models train)"
    ),
}


@dataclass(frozen=True)
class ModelFamily:
    chat_template: str
    lora_target_modules: str
    # axolotl's `role_boundaries` where its strategy for the family has none built in.
    role_boundaries: tuple[dict[str, Any], ...] = ()


def layers_regex(language_prefix: str, linear: str = LAYER_LINEAR) -> str:
    """The LoRA target: the decoder layers' Linear modules under `language_prefix` only."""
    return rf"{re.escape(language_prefix)}\.layers\.[\d]+\.{linear}"


def _family(chat_template: str, model_type: str | None = None) -> ModelFamily:
    """The family of a chat template, refined by the model's type where it is known (the
    tokenizer's own template says nothing of where its turns start)."""
    prefix = _LANGUAGE_PREFIX.get(chat_template, _LANGUAGE_MODEL)
    markers = _ROLE_BOUNDARIES.get(chat_template, ())
    if chat_template == "tokenizer_default":
        markers = _ROLE_BOUNDARIES.get(model_type or "", ())
    return ModelFamily(chat_template, layers_regex(prefix), markers)


def _normal(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _template_from_name(name: str) -> str | None:
    normal = _normal(name)
    for fragments, template in _NAME_HINTS:
        if any(fragment in normal for fragment in fragments):
            return template
    return None


def local_config(base_model: str) -> dict[str, Any] | None:
    """A local model folder's config.json; None for hub names and unreadable files."""
    try:
        config = json.loads((Path(base_model) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return config if isinstance(config, dict) else None


def _local_model_type(folder: Path) -> str | None:
    """config.json's model_type; Pixtral-12B's (a LLaVA) is its vision tower's."""
    config = local_config(str(folder))
    if config is None:
        return None
    model_type = config.get("model_type")
    vision = config.get("vision_config")
    vision_type = vision.get("model_type") if isinstance(vision, dict) else None
    # Only a LLaVA's tower tells: Mistral 3 has a Pixtral tower too, and its own template.
    if model_type == "llava" and vision_type in _VISION_MODEL_TYPES:
        return str(vision_type)
    return model_type if isinstance(model_type, str) else None


def _type_from_name(name: str) -> str | None:
    """The model type a hub name shows, for families whose template says nothing of it."""
    normal = _normal(name)
    return next((kind for kind in ("smolvlm", "idefics3") if kind in normal), None)


def model_family(base_model: str, chat_template: str | None = None) -> ModelFamily:
    """The family of `base_model`; an explicit chat_template wins.

    Raises UserError naming `chat_template` when the family cannot be told, so the user can
    say which one it is, and naming `base_model` for a family axolotl 0.19 cannot train.
    """
    local = Path(base_model)
    # A local folder's config.json is the surest; its name or a hub name is a hint.
    model_type = _local_model_type(local) if local.is_dir() else None
    name = local.name if local.is_dir() else base_model
    model_type = model_type or _type_from_name(name)
    if model_type in _UNSUPPORTED:
        raise UserError("base_model", _UNSUPPORTED[model_type])
    if chat_template is not None:
        return _family(chat_template, model_type)
    template = _MODEL_TYPES.get(model_type or "") or _template_from_name(name)
    if template is None:
        raise UserError(
            "chat_template",
            f"cannot tell the model family of {base_model!r}; give one of: "
            + ", ".join(CHAT_TEMPLATES),
        )
    return _family(template, model_type)
