"""SmolVLM (and SmolVLM2): Idefics3's architecture under its own classes, with a video processor.

The same tiny parts as idefics3.py (tokenizer, template, sizes). SmolVLMProcessor refuses to be
built without num2words. axolotl 0.19 picks SmolVLM2ProcessingStrategy from the processor class,
which reads `tokenizer.additional_special_tokens_ids`, gone in transformers 5: it raises
AttributeError for every SmolVLM. It has no built-in role boundaries either (see idefics3.py).
"""

from __future__ import annotations

from pathlib import Path

from tests.family_models import Family
from tests.family_models.idefics3 import (
    CHAT_TEMPLATE,
    IMAGE_PROCESSOR_KWARGS,
    IMAGE_SEQ_LEN,
    tiny_parts,
)


def build(folder: Path) -> None:
    from transformers import (
        SmolVLMConfig,
        SmolVLMForConditionalGeneration,
        SmolVLMImageProcessor,
        SmolVLMProcessor,
        SmolVLMVideoProcessor,
    )

    tokenizer, vision, common = tiny_parts(extra_tokens=("<video>",))
    processor = SmolVLMProcessor(
        image_processor=SmolVLMImageProcessor(**IMAGE_PROCESSOR_KWARGS),
        tokenizer=tokenizer,
        video_processor=SmolVLMVideoProcessor(
            size=IMAGE_PROCESSOR_KWARGS["size"],
            max_image_size=IMAGE_PROCESSOR_KWARGS["max_image_size"],
        ),
        image_seq_len=IMAGE_SEQ_LEN,
        chat_template=CHAT_TEMPLATE,
    )
    model = SmolVLMForConditionalGeneration(SmolVLMConfig(vision_config=vision, **common))
    model.save_pretrained(folder)
    processor.save_pretrained(folder)


FAMILY = Family(
    name="smolvlm",
    model_type="smolvlm",
    chat_template="tokenizer_default",
    language_prefix="model.text_model.",
    tower_markers=("vision_model", "connector"),
    build=build,
    needs=("num2words",),
)
