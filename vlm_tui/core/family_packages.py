"""What a model family's processor and model need beyond the training stack, checked before launch.

transformers imports these only when the family's processor or model is built, so a missing one
fails a launch seconds to minutes in ("Qwen2VLVideoProcessor requires the Torchvision library").
Checked here from the installed metadata and module specs, never by importing them: torchvision
imports torch.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

from vlm_tui.core.errors import UserError


@dataclass(frozen=True)
class Needed:
    module: str  # what transformers imports
    distribution: str  # what pip installs
    why: str


_TORCHVISION = Needed("torchvision", "torchvision", "its processor's image and video transforms")
_TIMM = Needed("timm", "timm", "its vision tower (MobileNet-V5) comes from timm")
_NUM2WORDS = Needed("num2words", "num2words", "its processor spells frame counts in words")

# model_type in the model's config.json, then what that family's training needs.
NEEDED_BY_MODEL_TYPE: dict[str, tuple[Needed, ...]] = {
    "qwen2_vl": (_TORCHVISION,),
    "qwen2_5_vl": (_TORCHVISION,),
    "qwen3_vl": (_TORCHVISION,),
    "mistral3": (_TORCHVISION,),
    "pixtral": (_TORCHVISION,),
    "llava_onevision": (_TORCHVISION,),
    "idefics3": (_TORCHVISION,),
    "smolvlm": (_TORCHVISION, _NUM2WORDS),
    "llama4": (_TORCHVISION,),
    "gemma3n": (_TIMM,),
}
# The same from the chat template, for a model whose config.json is not local (a hub name).
NEEDED_BY_CHAT_TEMPLATE: dict[str, tuple[Needed, ...]] = {
    "qwen2_vl": (_TORCHVISION,),
    "pixtral": (_TORCHVISION,),
    "mistral_v7_tekken": (_TORCHVISION,),
    "llama4": (_TORCHVISION,),
    "gemma3n": (_TIMM,),
}


def local_model_type(base_model: str) -> str | None:
    """model_type from a local model folder's config.json; None for hub names and bad files."""
    try:
        config = json.loads((Path(base_model) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    model_type = config.get("model_type") if isinstance(config, dict) else None
    return model_type if isinstance(model_type, str) else None


def needed_packages(base_model: str, chat_template: str | None) -> tuple[str, tuple[Needed, ...]]:
    """The family's name as shown, and what it needs (empty when nothing beyond the stack)."""
    model_type = local_model_type(base_model)
    if model_type is not None:
        return model_type, NEEDED_BY_MODEL_TYPE.get(model_type, ())
    template = chat_template or ""
    return template, NEEDED_BY_CHAT_TEMPLATE.get(template, ())


def install_command(needed: Needed) -> str:
    """The pip line for `needed`; torchvision pinned to the release built for the torch here."""
    if needed.distribution == "torchvision":
        try:
            torch = importlib.metadata.version("torch")
        except importlib.metadata.PackageNotFoundError:
            return "pip install torchvision"
        # torch 2.N pairs with torchvision 0.(N+15): 2.13 with 0.28, 2.5 with 0.20.
        major, minor = [*torch.split("+")[0].split("."), "0"][:2]
        if major == "2" and minor.isdigit():
            return f"pip install 'torchvision==0.{int(minor) + 15}.*'"
        return "pip install torchvision"
    return f"pip install {needed.distribution}"


def is_installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require_family_packages(base_model: str, chat_template: str | None) -> None:
    """Raise UserError (exit 2, before anything is created) naming the first missing package."""
    family, needed = needed_packages(base_model, chat_template)
    for package in needed:
        if not is_installed(package.module):
            raise UserError(
                "base_model",
                f"{family} models need {package.distribution} ({package.why}), which is not"
                f" installed in this Python; install it with: {install_command(package)}",
            )
