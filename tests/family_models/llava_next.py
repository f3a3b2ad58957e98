"""LLaVA-NeXT (1.6): CLIP vision tower, Llama text model, LlavaNextProcessor with any-res tiling."""

from __future__ import annotations

from pathlib import Path

from tests.family_models import Family
from tests.family_models.common import token_id, train_tokenizer

IMAGE_SIZE = 32
PATCH_SIZE = 8
IMAGE_TOKEN = "<image>"


def build(folder: Path) -> None:
    from axolotl.utils.chat_templates import get_chat_template
    from transformers import (
        CLIPVisionConfig,
        LlamaConfig,
        LlavaNextConfig,
        LlavaNextForConditionalGeneration,
        LlavaNextImageProcessor,
        LlavaNextProcessor,
    )

    tokenizer = train_tokenizer(
        [], bos="<s>", eos="</s>", pad="<pad>", extra_special_tokens={"image_token": IMAGE_TOKEN}
    )
    # One pinpoint equal to the image: a 32x32 image is one base tile plus one high-res tile,
    # 16 base + 16 tiled + 4 newline features = 36 <image> tokens (the CLS is dropped: "default").
    pinpoints = [[IMAGE_SIZE, IMAGE_SIZE]]
    image_processor = LlavaNextImageProcessor(
        size={"shortest_edge": IMAGE_SIZE},
        crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        image_grid_pinpoints=pinpoints,
    )
    processor = LlavaNextProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=PATCH_SIZE,
        vision_feature_select_strategy="default",
        chat_template=get_chat_template("llava"),
        image_token=IMAGE_TOKEN,
        num_additional_image_tokens=1,
    )
    config = LlavaNextConfig(
        vision_config=CLIPVisionConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=IMAGE_SIZE,
            patch_size=PATCH_SIZE,
            projection_dim=32,
        ),
        text_config=LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=4,
            max_position_embeddings=1024,
            initializer_range=0.2,  # as the demo's builder: lets LoRA make the loss fall fast
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        ),
        image_token_index=token_id(tokenizer, IMAGE_TOKEN),
        image_grid_pinpoints=pinpoints,
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
        image_seq_length=(IMAGE_SIZE // PATCH_SIZE) ** 2,
    )
    model = LlavaNextForConditionalGeneration(config)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)


FAMILY = Family(
    name="llava_next",
    model_type="llava_next",
    chat_template="llava",
    language_prefix="model.language_model.",
    tower_markers=("vision_tower", "multi_modal_projector", "image_newline"),
    build=build,
    needs=("torchvision",),
)
