"""Qwen3-VL: DeepStack ViT, Qwen3 text model (interleaved M-RoPE), Qwen3VLProcessor."""

from __future__ import annotations

from pathlib import Path

from tests.family_models import Family
from tests.family_models import _qwen as q


def build(folder: Path) -> None:
    from transformers import (
        Qwen3VLConfig,
        Qwen3VLForConditionalGeneration,
        Qwen3VLProcessor,
        Qwen3VLVideoProcessor,
    )

    tok = q.tokenizer()
    config = Qwen3VLConfig(
        vision_config={
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "out_hidden_size": q.TEXT_HIDDEN,
            "patch_size": q.PATCH,
            "spatial_merge_size": q.MERGE,
            "num_position_embeddings": 16,  # a 4x4 grid of learned positions (32 / 8)
            "deepstack_visual_indexes": [0],  # vision layer 0's features join text layer 0
        },
        # Interleaved M-RoPE needs the t section >= the h and w ones.
        text_config=q.text_config(tok, [4, 2, 2], head_dim=q.HEAD_DIM),
        **q.token_ids(tok),
    )
    q.save(
        folder,
        Qwen3VLForConditionalGeneration,
        config,
        Qwen3VLProcessor,
        Qwen3VLVideoProcessor,
        tok,
    )


FAMILY = Family(
    name="qwen3_vl",
    model_type="qwen3_vl",
    chat_template="qwen2_vl",
    language_prefix="model.language_model.",
    tower_markers=("visual",),
    build=build,
    needs=("torchvision",),
)
