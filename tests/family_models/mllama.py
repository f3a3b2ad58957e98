"""Llama 3.2 Vision (mllama): a tiled vision encoder whose features the text model reads through
interleaved cross-attention layers; `<|image|>` stays one token in the text."""

from __future__ import annotations

from pathlib import Path

from tests.family_models import Family
from tests.family_models.common import token_id, train_tokenizer

IMAGE_SIZE = 32  # one tile: the dataset's images, never split
PATCH_SIZE = 8


def build(folder: Path) -> None:
    from axolotl.utils.chat_templates import get_chat_template
    from transformers import (
        MllamaConfig,
        MllamaForConditionalGeneration,
        MllamaImageProcessor,
        MllamaProcessor,
        MllamaTextConfig,
        MllamaVisionConfig,
    )

    template = get_chat_template("llama3_2_vision")
    tokenizer = train_tokenizer(
        [
            "<|end_of_text|>",
            "<|start_header_id|>",
            "<|end_header_id|>",
            "<|python_tag|>",  # MllamaProcessor looks its id up
        ],
        bos="<|begin_of_text|>",
        eos="<|eot_id|>",  # the instruct model's end of turn, as in Llama-3.2-11B-Vision-Instruct
        pad="<|finetune_right_pad_id|>",
        extra_special_tokens={"image_token": "<|image|>"},
        chat_template=template,
    )
    processor = MllamaProcessor(
        image_processor=MllamaImageProcessor(
            size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}, max_image_tiles=1
        ),
        tokenizer=tokenizer,
        chat_template=template,
    )
    vision_layers = 2
    # Hidden states concatenated to the output: its width is 32 * (1 + 2).
    intermediate_layers = [0, 1]
    config = MllamaConfig(
        vision_config=MllamaVisionConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=vision_layers,
            num_global_layers=1,
            attention_heads=2,
            image_size=IMAGE_SIZE,
            patch_size=PATCH_SIZE,
            max_num_tiles=1,
            supported_aspect_ratios=[[1, 1]],
            intermediate_layers_indices=intermediate_layers,
            vision_output_dim=32 * (1 + len(intermediate_layers)),
        ),
        text_config=MllamaTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            cross_attention_layers=[1],  # layer 0 self-attends, layer 1 attends to the image
            max_position_embeddings=1024,
            initializer_range=0.2,  # as the demo's builder: lets LoRA move the loss fast
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        ),
        image_token_index=token_id(tokenizer, "<|image|>"),
    )
    model = MllamaForConditionalGeneration(config)
    # The cross-attention layer's tanh gates start at 0 (a trained checkpoint's are not): closed,
    # the image never reaches the text and LoRA on that layer gets no gradient at all.
    for layer in model.model.language_model.layers:
        if hasattr(layer, "cross_attn_attn_gate"):
            layer.cross_attn_attn_gate.data.fill_(1.0)
            layer.cross_attn_mlp_gate.data.fill_(1.0)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)


FAMILY = Family(
    name="mllama",
    model_type="mllama",
    chat_template="llama3_2_vision",
    language_prefix="model.language_model.",
    tower_markers=("vision_model", "multi_modal_projector"),
    build=build,
    needs=("torchvision",),  # MllamaImageProcessor is a torchvision backend
)
