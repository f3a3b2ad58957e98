"""Llama 4: a pixel-shuffle vision tower whose tokens replace `<|patch|>` placeholders, and a
text model of mixture-of-experts layers (here layer 1; layer 0 is the dense MLP some Llama 4
models interleave). Unlike every other family, the text model sits at `language_model.model`."""

from __future__ import annotations

from pathlib import Path

from tests.family_models import Family
from tests.family_models.common import token_id, train_tokenizer

IMAGE_SIZE = 32  # one tile: the dataset's images are never split (no global tile either)
PATCH_SIZE = 8  # 16 patches, pixel shuffle 0.5 -> 4 <|patch|> tokens an image


def build(folder: Path) -> None:
    from axolotl.utils.chat_templates import get_chat_template
    from transformers import (
        Llama4Config,
        Llama4ForConditionalGeneration,
        Llama4ImageProcessor,
        Llama4Processor,
        Llama4TextConfig,
        Llama4VisionConfig,
    )

    template = get_chat_template("llama4")
    tokenizer = train_tokenizer(
        [
            "<|end_of_text|>",
            "<|header_start|>",
            "<|header_end|>",
            "<|eom|>",
            "<|python_start|>",
            "<|python_end|>",
            "<|image_start|>",
            "<|image_end|>",
            "<|image|>",
            "<|patch|>",
            "<|tile_x_separator|>",
            "<|tile_y_separator|>",
        ],
        bos="<|begin_of_text|>",
        eos="<|eot|>",  # the instruct models' end of turn
        pad="<|finetune_right_pad|>",
        chat_template=template,
    )
    # Llama4ImageProcessor rescales and normalises in bfloat16 (hard-coded) when it does both,
    # which a float32 model (the CPU's) refuses: "expected scalar type Float but found BFloat16".
    # Rescaling alone stays float32 (pixels in [0, 1], not [-1, 1]: no matter to random weights).
    image_processor = Llama4ImageProcessor(
        size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}, max_patches=1, do_normalize=False
    )
    processor = Llama4Processor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=PATCH_SIZE,
        pixel_shuffle_ratio=0.5,
        chat_template=template,
    )
    vision_hidden = 32
    config = Llama4Config(
        vision_config=Llama4VisionConfig(
            hidden_size=vision_hidden,
            # The pixel shuffle folds 2x2 patches into one: the adapter's input is 4x the width.
            intermediate_size=4 * vision_hidden,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=IMAGE_SIZE,
            patch_size=PATCH_SIZE,
            pixel_shuffle_ratio=0.5,
            projector_input_dim=64,
            projector_output_dim=64,
            vision_output_dim=64,
        ),
        text_config=Llama4TextConfig(
            vocab_size=len(tokenizer),
            hidden_size=64,
            intermediate_size=64,  # one expert's width
            intermediate_size_mlp=128,  # the dense layers' MLP
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=16,
            num_local_experts=2,
            num_experts_per_tok=1,
            moe_layers=[1],
            max_position_embeddings=1024,
            initializer_range=0.2,  # as the demo's builder: lets LoRA move the loss fast
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        ),
        boi_token_index=token_id(tokenizer, "<|image_start|>"),
        eoi_token_index=token_id(tokenizer, "<|image_end|>"),
        # The image features replace the <|patch|> tokens (<|image|> is the prompt's placeholder).
        image_token_index=token_id(tokenizer, "<|patch|>"),
    )
    model = Llama4ForConditionalGeneration(config)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)


FAMILY = Family(
    name="llama4",
    model_type="llama4",
    chat_template="llama4",
    language_prefix="language_model.model.",
    tower_markers=("vision_model", "multi_modal_projector"),
    build=build,
    needs=("torchvision",),  # Llama4ImageProcessor is a torchvision backend
)
