"""Qwen2.5-VL: windowed-attention ViT with patch merger, Qwen2 text model, Qwen2_5_VLProcessor."""

from __future__ import annotations

from pathlib import Path

from tests.family_models import Family
from tests.family_models import _qwen as q


def build(folder: Path) -> None:
    from transformers import (
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
    )
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    tok = q.tokenizer()
    config = Qwen2_5_VLConfig(
        vision_config={
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "out_hidden_size": q.TEXT_HIDDEN,
            "patch_size": q.PATCH,
            "spatial_merge_size": q.MERGE,
            # In pixels: a 2x2 window of merged tokens; layer 0 windowed, layer 1 full attention.
            "window_size": 2 * q.MERGE * q.PATCH,
            "fullatt_block_indexes": [1],
        },
        text_config=q.text_config(tok, [2, 3, 3]),
        **q.token_ids(tok),
    )
    q.save(
        folder,
        Qwen2_5_VLForConditionalGeneration,
        config,
        Qwen2_5_VLProcessor,
        Qwen2VLVideoProcessor,
        tok,
    )


FAMILY = Family(
    name="qwen2_5_vl",
    model_type="qwen2_5_vl",
    chat_template="qwen2_vl",
    language_prefix="model.language_model.",
    tower_markers=("visual",),
    build=build,
    needs=("torchvision",),
)
