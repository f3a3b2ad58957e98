"""Pixtral-12B's layout: LlavaForConditionalGeneration over a Pixtral vision tower and a Mistral
text model, PixtralProcessor. mistral3.py reuses the tokenizer and processor made here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.family_models import Family
from tests.family_models.common import token_id, train_tokenizer

# The Mistral tokenizer's control tokens: what the pixtral / mistral_v7_tekken templates render
# and what PixtralProcessor expands an image into ([IMG] per patch, [IMG_BREAK] per row, [IMG_END]).
SPECIALS = (
    "<unk>",
    "[INST]",
    "[/INST]",
    "[IMG]",
    "[IMG_BREAK]",
    "[IMG_END]",
    "[SYSTEM_PROMPT]",
    "[/SYSTEM_PROMPT]",
)
IMAGE_SIZE = 32  # the demo's images; the image processor's longest edge
PATCH_SIZE = 8


def tokenizer_and_processor(
    template: str,
    *,
    spatial_merge_size: int,
    extra_corpus: tuple[str, ...] = (),
    vocab_size: int = 400,
) -> tuple[Any, Any]:
    """A Mistral-style tokenizer and a PixtralProcessor that carries axolotl's `template`."""
    from axolotl.utils.chat_templates import get_chat_template
    from transformers import PixtralImageProcessor, PixtralProcessor

    chat_template = str(get_chat_template(template))
    tokenizer = train_tokenizer(
        SPECIALS,
        bos="<s>",
        eos="</s>",
        pad="<pad>",
        extra_corpus=extra_corpus,
        vocab_size=vocab_size,
    )
    tokenizer.unk_token = "<unk>"
    tokenizer.chat_template = chat_template
    merged = PATCH_SIZE * spatial_merge_size  # the processor resizes to multiples of this
    image_processor = PixtralImageProcessor(
        size={"longest_edge": IMAGE_SIZE}, patch_size={"height": merged, "width": merged}
    )
    processor = PixtralProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=PATCH_SIZE,
        spatial_merge_size=spatial_merge_size,
        chat_template=chat_template,
    )
    return tokenizer, processor


def vision_config() -> Any:
    from transformers import PixtralVisionConfig

    return PixtralVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=IMAGE_SIZE,
        patch_size=PATCH_SIZE,
        hidden_act="silu",  # Pixtral-12B's
    )


def text_config(tokenizer: Any) -> Any:
    from transformers import MistralConfig

    return MistralConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=1024,
        sliding_window=None,
        initializer_range=0.2,  # as the demo's builder: lets LoRA make the loss fall fast
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def build(folder: Path) -> None:
    from transformers import LlavaConfig, LlavaForConditionalGeneration

    # 32x32 image, patch 8, no merge: 4 rows of 4 [IMG] + [IMG_BREAK]/[IMG_END] = 20 tokens.
    tokenizer, processor = tokenizer_and_processor("pixtral", spatial_merge_size=1)
    config = LlavaConfig(
        vision_config=vision_config(),
        text_config=text_config(tokenizer),
        image_token_index=token_id(tokenizer, "[IMG]"),
        projector_hidden_act="gelu",
        vision_feature_layer=-1,
        vision_feature_select_strategy="full",  # Pixtral has no CLS token to drop
        image_seq_length=(IMAGE_SIZE // PATCH_SIZE) ** 2,
    )
    LlavaForConditionalGeneration(config).save_pretrained(folder)
    processor.save_pretrained(folder)


FAMILY = Family(
    name="pixtral",
    model_type="llava",
    chat_template="pixtral",
    language_prefix="model.language_model.",
    tower_markers=("vision_tower", "multi_modal_projector"),
    build=build,
    needs=("torchvision",),
)
