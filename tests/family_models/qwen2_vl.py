"""Qwen2-VL: ViT with 2x2 patch merger, Qwen2 text model with M-RoPE, Qwen2VLProcessor."""

from __future__ import annotations

from pathlib import Path

from tests.family_models import Family
from tests.family_models import _qwen as q


def build(folder: Path) -> None:
    from transformers import (
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen2VLProcessor,
    )
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    tok = q.tokenizer()
    config = Qwen2VLConfig(
        vision_config={
            "depth": 2,
            "embed_dim": 32,
            "hidden_size": q.TEXT_HIDDEN,  # the merger's output: the text model's width
            "num_heads": 2,
            "mlp_ratio": 2,
            "patch_size": q.PATCH,
            "spatial_merge_size": q.MERGE,
        },
        text_config=q.text_config(tok, [2, 3, 3]),
        **q.token_ids(tok),
    )
    q.save(
        folder,
        Qwen2VLForConditionalGeneration,
        config,
        Qwen2VLProcessor,
        Qwen2VLVideoProcessor,
        tok,
    )


FAMILY = Family(
    name="qwen2_vl",
    model_type="qwen2_vl",
    chat_template="qwen2_vl",
    language_prefix="model.language_model.",
    tower_markers=("visual",),
    build=build,
    needs=("torchvision",),
)
