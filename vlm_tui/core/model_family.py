"""Which chat template and which language-model layers belong to a base model.

Axolotl needs the chat template of the model's family, and LoRA must adapt only the language
model (adapting the vision tower too costs memory and rarely helps). transformers 5 nests the
text model as `model.language_model` in every VLM family below except Llama 4.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from vlm_tui.core.errors import UserError
from vlm_tui.core.settings import CHAT_TEMPLATES

_LANGUAGE_LAYERS = (
    r"model.language_model.layers.[\d]+.(mlp|cross_attn|self_attn).(up|down|gate|q|k|v|o)_proj"
)
_LLAMA4_LAYERS = (
    r"language_model.model.layers.[\d]+.(feed_forward|self_attn).(up|down|gate|q|k|v|o)_proj"
)

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
}


@dataclass(frozen=True)
class ModelFamily:
    chat_template: str
    lora_target_modules: str


def _family(chat_template: str) -> ModelFamily:
    layers = _LLAMA4_LAYERS if chat_template == "llama4" else _LANGUAGE_LAYERS
    return ModelFamily(chat_template, layers)


def _template_from_name(name: str) -> str | None:
    normal = name.lower().replace("_", "-").replace(".", "-")
    for fragments, template in _NAME_HINTS:
        if any(fragment in normal for fragment in fragments):
            return template
    return None


def _template_from_local_config(folder: Path) -> str | None:
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    model_type = config.get("model_type") if isinstance(config, dict) else None
    return _MODEL_TYPES.get(model_type) if isinstance(model_type, str) else None


def model_family(base_model: str, chat_template: str | None = None) -> ModelFamily:
    """The family of `base_model`; an explicit chat_template wins.

    Raises UserError naming `chat_template` when the family cannot be told, so the user can
    say which one it is.
    """
    if chat_template is not None:
        return _family(chat_template)
    local = Path(base_model)
    # A local folder's own name is a hint too; its config.json settles the rest.
    template = _template_from_name(local.name if local.is_dir() else base_model)
    if template is None and local.is_dir():
        template = _template_from_local_config(local)
    if template is None:
        raise UserError(
            "chat_template",
            f"cannot tell the model family of {base_model!r}; give one of: "
            + ", ".join(CHAT_TEMPLATES),
        )
    return _family(template)
