"""Idefics3: SigLIP-like vision tower, pixel-shuffle connector, Llama text (`model.text_model`).

axolotl has no chat template of its own for it (`tokenizer_default`) and no built-in role
boundaries (the base ProcessingStrategy): `ROLE_BOUNDARIES` is the override that keeps only the
assistant's answer and its <end_of_utterance> in the loss.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.family_models import Family
from tests.family_models.common import token_id, train_tokenizer

IMAGE_SIZE = 32
PATCH_SIZE = 8
SCALE_FACTOR = 2  # pixel shuffle: (32/8)^2 / 2^2 = 4 <image> tokens per image
IMAGE_SEQ_LEN = (IMAGE_SIZE // PATCH_SIZE) ** 2 // SCALE_FACTOR**2
BOS, EOS, PAD = "<|im_start|>", "<end_of_utterance>", "<|im_end|>"
FAKE, IMAGE, GLOBAL = "<fake_token_around_image>", "<image>", "<global-img>"
# The Idefics3/SmolVLM template, shortened: "<|im_start|>User:<image>What is this?<end_of_utterance>
# \nAssistant: A red circle.<end_of_utterance>\n" (no space after "User:" before an image).
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{{ message['role'] | capitalize }}"
    "{% if message['content'][0]['type'] == 'image' %}:{% else %}: {% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{ line['text'] }}"
    "{% elif line['type'] == 'image' %}<image>"
    "{% elif line['type'] == 'video' %}<video>{% endif %}"
    "{% endfor %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)
ROLE_BOUNDARIES = [
    {"role": "user", "start": "User:", "end": EOS},
    {"role": "assistant", "start": "Assistant:", "end": EOS},
]


def tiny_parts(extra_tokens: tuple[str, ...] = ()) -> tuple[Any, Any, dict[str, Any]]:
    """The tokenizer, the vision config and the text config both families share."""
    from transformers import LlamaConfig

    tokenizer = train_tokenizer(
        [FAKE, IMAGE, GLOBAL, *extra_tokens],
        bos=BOS,
        eos=EOS,
        pad=PAD,
        # The processors read these as tokenizer attributes (SmolVLM) or hard-code them (Idefics3).
        extra_special_tokens={
            "image_token": IMAGE,
            "fake_image_token": FAKE,
            "global_image_token": GLOBAL,
            "end_of_utterance_token": EOS,
        },
        chat_template=CHAT_TEMPLATE,
        extra_corpus=("User:", "Assistant:", "User: What is this?", "Assistant: A red circle."),
    )
    vision = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "image_size": IMAGE_SIZE,
        "patch_size": PATCH_SIZE,
    }
    text = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=1024,
        initializer_range=0.2,  # as the demo's builder: lets LoRA make the loss fall fast
        bos_token_id=token_id(tokenizer, BOS),
        eos_token_id=token_id(tokenizer, EOS),
        pad_token_id=token_id(tokenizer, PAD),
    )
    common = {
        "text_config": text,
        "image_token_id": token_id(tokenizer, IMAGE),
        "scale_factor": SCALE_FACTOR,
        "pad_token_id": token_id(tokenizer, PAD),
    }
    return tokenizer, vision, common


# No splitting, one 32x32 square per image: <fake><global-img><image>*4<fake>.
IMAGE_PROCESSOR_KWARGS = {
    "do_image_splitting": False,
    "size": {"longest_edge": IMAGE_SIZE},
    "max_image_size": {"longest_edge": IMAGE_SIZE},
}


def build(folder: Path) -> None:
    from transformers import (
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        Idefics3ImageProcessor,
        Idefics3Processor,
    )

    tokenizer, vision, common = tiny_parts()
    processor = Idefics3Processor(
        image_processor=Idefics3ImageProcessor(**IMAGE_PROCESSOR_KWARGS),
        tokenizer=tokenizer,
        image_seq_len=IMAGE_SEQ_LEN,
        chat_template=CHAT_TEMPLATE,
    )
    model = Idefics3ForConditionalGeneration(Idefics3Config(vision_config=vision, **common))
    model.save_pretrained(folder)
    processor.save_pretrained(folder)


FAMILY = Family(
    name="idefics3",
    model_type="idefics3",
    chat_template="tokenizer_default",
    language_prefix="model.text_model.",
    tower_markers=("vision_model", "connector"),
    build=build,
)
