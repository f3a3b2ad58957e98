"""LoRA's target from the model's own module names, read in a child before launch.

The family table (model_family.py) guesses where the language model lives, and a dry run shows
that guess. At launch a child builds the model's skeleton (vlm_tui/training/model_layers.py) and
the target vlm-tui wrote becomes the one that names the modules the model really has. A target
the user wrote (their `--config`) is theirs and is left alone.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from vlm_tui.core.errors import UserError
from vlm_tui.core.request.model_family import model_family
from vlm_tui.core.training_child import finish_child, start_child

PROBE_TIMEOUT_SECONDS = 180


@dataclass(frozen=True)
class LanguageLayers:
    prefix: str  # where the language model lives at run time ("model.text_model")
    linear: tuple[str, ...]  # the projections of one decoder layer ("self_attn.q_proj", ...)
    target: str  # the regex over them
    adapted: int  # how many modules it matches

    def line(self) -> str:
        return (
            f"LoRA on the language model's layers under {self.prefix}:"
            f" {len(self.linear)} projections per layer, {self.adapted} modules"
        )


def target_is_ours(config: Mapping[str, Any]) -> bool:
    """Whether the config's LoRA target is the family's guess (not one the user wrote)."""
    if config.get("adapter") != "lora":
        return False
    template = config.get("chat_template")
    try:
        guess = model_family(
            str(config.get("base_model") or ""), template if isinstance(template, str) else None
        )
    except UserError:
        return False
    return config.get("lora_target_modules") == guess.lora_target_modules


def start_probe(model: str, environ: Mapping[str, str]) -> subprocess.Popen[str]:
    # Offline: a hub model that is not cached keeps the family's guess.
    return start_child("vlm_tui.training.model_layers", [model], environ)


def finish_probe(child: subprocess.Popen[str]) -> LanguageLayers | str:
    """The layers found, or why none were (then the guess stays)."""
    found = finish_child(child, PROBE_TIMEOUT_SECONDS)
    if isinstance(found, str):
        return found
    if "error" in found:
        return str(found["error"])
    return LanguageLayers(
        str(found["prefix"]), tuple(found["linear"]), str(found["target"]), int(found["adapted"])
    )


def apply_found(config: MutableMapping[str, Any], found: LanguageLayers | str) -> str:
    """Put the found target into `config`; the line that says what LoRA adapts."""
    if isinstance(found, str):
        return (
            f"LoRA target kept as the family's usual layers ({config['lora_target_modules']}):"
            f" the model's own could not be read: {found}"
        )
    config["lora_target_modules"] = found.target
    return found.line()
