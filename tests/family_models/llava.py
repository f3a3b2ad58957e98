"""LLaVA 1.5: the demo's own model (CLIP vision tower, Llama text model, LlavaProcessor)."""

from __future__ import annotations

from pathlib import Path

from tests.family_models import Family
from tests.family_models.common import corpus


def build(folder: Path) -> None:
    from vlm_tui.training.demo_builder import _write_model

    _write_model(folder, corpus())


FAMILY = Family(
    name="llava",
    model_type="llava",
    chat_template="llava",
    language_prefix="model.language_model.",
    tower_markers=("vision_tower", "multi_modal_projector"),
    build=build,
)
