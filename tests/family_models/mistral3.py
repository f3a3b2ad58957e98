"""Mistral Small 3.1 / 3.2: Mistral3ForConditionalGeneration (Pixtral vision tower, patch-merging
projector, Mistral text model), PixtralProcessor, axolotl's mistral_v7_tekken template."""

from __future__ import annotations

from pathlib import Path

from tests.family_models import Family
from tests.family_models.common import token_id
from tests.family_models.pixtral import (
    text_config,
    tokenizer_and_processor,
    vision_config,
)


def build(folder: Path) -> None:
    import re

    from axolotl.utils.chat_templates import get_chat_template
    from transformers import Mistral3Config, Mistral3ForConditionalGeneration

    # mistral_v7_tekken renders a long default system prompt when the row has none: teach the
    # tokenizer its words so a row is ~180 tokens, not ~550, well inside sequence_len 512.
    template = str(get_chat_template("mistral_v7_tekken"))
    system = re.search(r'default_system_message = "(.*?)" %}', template)
    assert system is not None
    text = system.group(1).replace('" + today + "', "2025-01-01")
    extra = (text.replace('\\"', '"').replace("\\n", "\n"),)
    # 32x32 image, patch 8, 2x2 merge: 2 rows of 2 [IMG] + [IMG_BREAK]/[IMG_END] = 6 tokens.
    tokenizer, processor = tokenizer_and_processor(
        "mistral_v7_tekken", spatial_merge_size=2, extra_corpus=extra, vocab_size=800
    )
    config = Mistral3Config(
        vision_config=vision_config(),
        text_config=text_config(tokenizer),
        image_token_index=token_id(tokenizer, "[IMG]"),
        spatial_merge_size=2,
        vision_feature_layer=-1,
        tie_word_embeddings=False,  # Mistral Small 3.x's
    )
    Mistral3ForConditionalGeneration(config).save_pretrained(folder)
    processor.save_pretrained(folder)


FAMILY = Family(
    name="mistral3",
    model_type="mistral3",
    chat_template="mistral_v7_tekken",
    language_prefix="model.language_model.",
    tower_markers=("vision_tower", "multi_modal_projector"),
    build=build,
    needs=("torchvision",),
)
