"""Tiny randomly initialised models of every VLM family vlm-tui offers, built offline.

Each module here beside this one describes one family in `FAMILY` (a `Family`) and builds its
model with the family's real transformers classes: random weights, a byte-level BPE tokenizer
trained on the demo's captions with the family's special tokens, and the family's own processor,
all small enough to train on a CPU in seconds. `python -m tests.family_models build NAME DIR`
builds one in a child (it imports torch; the test process does not need to).

The dataset is the demo's (32x32 shapes, `messages` format, absolute image paths), so a family's
test differs from the demo's only in the model.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Family:
    name: str  # the test id, one per transformers model class
    model_type: str  # config.json's model_type, what vlm-tui detects the family from
    chat_template: str  # what vlm-tui must choose for it (axolotl's name, or tokenizer_default)
    # Where the language model's decoder layers live at run time ("model.language_model"): every
    # adapted module must start with it.
    language_prefix: str
    # Name fragments of the vision (and audio) towers and projector: no adapted module may hold one.
    tower_markers: tuple[str, ...]
    build: Callable[[Path], None]  # writes config, weights, processor and tokenizer into a folder
    needs: tuple[str, ...] = ()  # modules the family's processor or model imports
    # Extra vlm-tui flags for its training (name -> value), e.g. a longer sequence_len.
    flags: Mapping[str, str] = field(default_factory=dict)


def all_families() -> list[Family]:
    """Every module's FAMILY, in name order."""
    found = []
    for module in pkgutil.iter_modules(__path__):
        if module.name.startswith("_") or module.name in {"common"}:
            continue
        loaded = importlib.import_module(f"{__name__}.{module.name}")
        family = getattr(loaded, "FAMILY", None)
        if isinstance(family, Family):
            found.append(family)
    return sorted(found, key=lambda family: family.name)


def family_named(name: str) -> Family:
    for family in all_families():
        if family.name == name:
            return family
    raise KeyError(name)
