"""What the Qwen VL families share: ChatML tokenizer, Qwen2-VL image processor, tiny text config.

Images: patch 8, merge 2, min = max pixels = 32*32, so a 32x32 image stays 32x32, makes 4x4
patches and, after the 2x2 merge, 4 `<|image_pad|>` tokens.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.family_models.common import token_id, train_tokenizer

PATCH = 8
MERGE = 2
PIXELS = 32 * 32
TEXT_HIDDEN = 64
HEAD_DIM = 16
# Qwen VL tokens, added whole; the processors read the *_token attributes.
MARKERS = {
    "image_token": "<|image_pad|>",
    "video_token": "<|video_pad|>",
    "vision_start_token": "<|vision_start|>",
    "vision_end_token": "<|vision_end|>",
}


def tokenizer() -> Any:
    # Qwen has no bos; Instruct checkpoints end a turn (and generation) with <|im_end|>.
    return train_tokenizer(
        ["<|im_start|>", "<|im_end|>", "<|endoftext|>"],
        bos=None,
        eos="<|im_end|>",
        pad="<|endoftext|>",
        extra_special_tokens=MARKERS,
        extra_corpus=[
            "system\nYou are a helpful assistant.\n",
            "user\nWhat is this?\n",
            "assistant\n",
        ],
    )


def token_ids(tok: Any) -> dict[str, Any]:
    """The top-level config's vision token ids."""
    return {
        "image_token_id": token_id(tok, MARKERS["image_token"]),
        "video_token_id": token_id(tok, MARKERS["video_token"]),
        "vision_start_token_id": token_id(tok, MARKERS["vision_start_token"]),
        "vision_end_token_id": token_id(tok, MARKERS["vision_end_token"]),
    }


def text_config(tok: Any, mrope_section: list[int], **extra: Any) -> dict[str, Any]:
    """A 2-layer text model; mrope_section sums to HEAD_DIM / 2."""
    return {
        "vocab_size": len(tok),
        "hidden_size": TEXT_HIDDEN,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": TEXT_HIDDEN // HEAD_DIM,
        "num_key_value_heads": 2,
        "max_position_embeddings": 1024,
        "initializer_range": 0.2,  # as the demo's builder: lets LoRA make the loss fall fast
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": 10000.0,
            "mrope_section": mrope_section,
        },
        "bos_token_id": None,
        "eos_token_id": tok.eos_token_id,
        "pad_token_id": tok.pad_token_id,
        **extra,
    }


def save(
    folder: Path,
    model_cls: Any,
    config: Any,
    processor_cls: Any,
    video_processor_cls: Any,
    tok: Any,
) -> None:
    """Build the model and the processor (axolotl's qwen2_vl template as its chat template)."""
    from axolotl.utils.chat_templates import get_chat_template
    from transformers import Qwen2VLImageProcessor

    sizes = {"min_pixels": PIXELS, "max_pixels": PIXELS, "patch_size": PATCH, "merge_size": MERGE}
    processor = processor_cls(
        image_processor=Qwen2VLImageProcessor(temporal_patch_size=2, **sizes),
        video_processor=video_processor_cls(temporal_patch_size=2, **sizes),
        tokenizer=tok,
        chat_template=get_chat_template("qwen2_vl"),
    )
    model_cls(config).save_pretrained(folder)
    processor.save_pretrained(folder)
