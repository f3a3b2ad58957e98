"""What a model family's processor and model need beyond the training stack, checked before launch.

transformers imports these only when the family's processor or model is built, so a missing one
fails a launch seconds to minutes in ("Qwen2VLVideoProcessor requires the Torchvision library").
Checked here from the installed metadata and module specs, never by importing them: torchvision
imports torch.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from dataclasses import dataclass

from vlm_tui.core.errors import UserError
from vlm_tui.core.request.model_family import local_config


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
    config = local_config(base_model)
    model_type = config.get("model_type") if config is not None else None
    return model_type if isinstance(model_type, str) else None


def needed_packages(base_model: str, chat_template: str | None) -> tuple[str, tuple[Needed, ...]]:
    """The family's name as shown, and what it needs (empty when nothing beyond the stack)."""
    model_type = local_model_type(base_model)
    if model_type is not None:
        return model_type, NEEDED_BY_MODEL_TYPE.get(model_type, ())
    template = chat_template or ""
    return template, NEEDED_BY_CHAT_TEMPLATE.get(template, ())


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _torchvision_minor(torch: str) -> int | None:
    """torch 2.N pairs with torchvision 0.(N+15): 2.13 with 0.28, 2.5 with 0.20."""
    major, minor = [*torch.split("+")[0].split("."), "0"][:2]
    return int(minor) + 15 if major == "2" and minor.isdigit() else None


def _cpu_build(version: str) -> bool:
    return version.partition("+")[2] == "cpu"


def _torchvision_line(torch: str) -> str:
    """The pip line for the torchvision built for `torch` (the CPU index for a +cpu torch)."""
    minor = _torchvision_minor(torch)
    pin = f"'torchvision==0.{minor}.*'" if minor is not None else "torchvision"
    if _cpu_build(torch):
        return f"pip install --index-url https://download.pytorch.org/whl/cpu {pin}"
    return f"pip install {pin}"


def install_command(needed: Needed) -> str:
    """The pip line for `needed`; torchvision the release built for the torch here."""
    if needed.distribution == "torchvision":
        torch = _version("torch")
        return _torchvision_line(torch) if torch is not None else "pip install torchvision"
    return f"pip install {needed.distribution}"


def torchvision_mismatch() -> str | None:
    """Why the installed torchvision cannot load with the installed torch, read from their
    versions (importing it would import torch); None when they pair or one is absent.

    Measured: the package index's torchvision 0.28.0 (built against its CUDA torch) fails to
    import with a local 2.13.0+cpu torch; a release for another torch fails likewise.
    """
    torch, vision = _version("torch"), _version("torchvision")
    if torch is None or vision is None:
        return None
    minor = _torchvision_minor(torch)
    vision_minor = vision.split("+")[0].split(".")[1:2]
    wrong_release = minor is not None and vision_minor != [str(minor)]
    if not wrong_release and _cpu_build(torch) == _cpu_build(vision):
        return None
    return (
        f"torchvision {vision} is not built for torch {torch} and will not load;"
        f" install the matching one with: {_torchvision_line(torch)}"
    )


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
        mismatch = torchvision_mismatch() if package.module == "torchvision" else None
        if mismatch is not None:
            raise UserError("base_model", f"{family} models need torchvision: {mismatch}")
