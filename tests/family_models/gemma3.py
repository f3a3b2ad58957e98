"""Gemma 3: SigLIP vision tower, Gemma3 text model, Gemma3Processor (boi/soft image tokens)."""

from __future__ import annotations

from pathlib import Path

from tests.family_models import Family
from tests.family_models.common import token_id, train_tokenizer

IMAGE_SIZE = 32
PATCH_SIZE = 8
MM_TOKENS = 4  # the projector average-pools the 4x4 patch grid to 2x2 soft tokens per image


def build(folder: Path) -> None:
    import torch
    from axolotl.utils.chat_templates import get_chat_template
    from transformers import (
        Gemma3Config,
        Gemma3ForConditionalGeneration,
        Gemma3ImageProcessor,
        Gemma3Processor,
        Gemma3TextConfig,
        SiglipVisionConfig,
    )

    chat_template = get_chat_template("gemma3")
    # Gemma3Processor reads boi_token, eoi_token and image_token off the tokenizer.
    tokenizer = train_tokenizer(
        ["<start_of_turn>", "<end_of_turn>"],
        bos="<bos>",
        eos="<eos>",
        pad="<pad>",
        extra_special_tokens={
            "boi_token": "<start_of_image>",
            "eoi_token": "<end_of_image>",
            "image_token": "<image_soft_token>",
        },
        chat_template=chat_template,
    )
    processor = Gemma3Processor(
        image_processor=Gemma3ImageProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}),
        tokenizer=tokenizer,
        chat_template=chat_template,
        image_seq_length=MM_TOKENS,
    )
    config = Gemma3Config(
        vision_config=SiglipVisionConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=IMAGE_SIZE,
            patch_size=PATCH_SIZE,
            vision_use_head=False,
        ),
        text_config=Gemma3TextConfig(
            vocab_size=len(tokenizer),
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=16,
            query_pre_attn_scalar=16,
            sliding_window=512,
            layer_types=["sliding_attention", "full_attention"],
            max_position_embeddings=1024,
            initializer_range=0.2,  # as the demo's builder: lets LoRA make the loss fall fast
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        ),
        mm_tokens_per_image=MM_TOKENS,
        boi_token_index=token_id(tokenizer, "<start_of_image>"),
        eoi_token_index=token_id(tokenizer, "<end_of_image>"),
        image_token_index=token_id(tokenizer, "<image_soft_token>"),
        initializer_range=0.2,  # the composite model initialises every Linear with this one
    )
    model = Gemma3ForConditionalGeneration(config)
    # Gemma3 initialises the projector to zeros: the image would not reach the text model at all.
    torch.nn.init.normal_(model.model.multi_modal_projector.mm_input_projection_weight, std=0.2)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)


FAMILY = Family(
    name="gemma3",
    model_type="gemma3",
    chat_template="gemma3",
    language_prefix="model.language_model.",
    tower_markers=("vision_tower", "multi_modal_projector"),
    build=build,
    needs=("torchvision",),
)
