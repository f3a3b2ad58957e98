"""Gemma 3n: timm MobileNet-V5 vision tower, Conformer audio tower, Gemma3n text model."""

from __future__ import annotations

from pathlib import Path

from tests.family_models import Family
from tests.family_models.common import token_id, train_tokenizer

IMAGE_SIZE = 32
VISION_TOKENS = 4  # MobileNet-V5 downsamples 32 px to 2x2; its fusion adapter emits that grid
# Gemma3n embeds ids by range: text ids below the vision offset (and below the per-layer
# vocabulary), then the vision vocabulary, then the audio vocabulary last. So the image and audio
# tokens that live in those ranges are appended after the trained text tokens, in this order.
VISION_TOKENS_NAMED = {"eoi_token": "<end_of_image>", "image_token": "<image_soft_token>"}
AUDIO_TOKENS_NAMED = {"eoa_token": "<end_of_audio>", "audio_token": "<audio_soft_token>"}


def build(folder: Path) -> None:
    from axolotl.utils.chat_templates import get_chat_template
    from transformers import (
        Gemma3nAudioConfig,
        Gemma3nAudioFeatureExtractor,
        Gemma3nConfig,
        Gemma3nForConditionalGeneration,
        Gemma3nProcessor,
        Gemma3nTextConfig,
        Gemma3nVisionConfig,
        PreTrainedTokenizerFast,
        SiglipImageProcessor,
    )

    chat_template = get_chat_template("gemma3n")
    text_named = {"boi_token": "<start_of_image>", "boa_token": "<start_of_audio>"}
    trained = train_tokenizer(
        ["<start_of_turn>", "<end_of_turn>"],
        bos="<bos>",
        eos="<eos>",
        pad="<pad>",
        extra_special_tokens=text_named,
    )
    text_vocab = len(trained)
    # Rebuilt around the trained BPE: named tokens not yet in it are appended, in order.
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=trained.backend_tokenizer,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        additional_special_tokens=["<start_of_turn>", "<end_of_turn>"],
        extra_special_tokens={**text_named, **VISION_TOKENS_NAMED, **AUDIO_TOKENS_NAMED},
        padding_side="right",
        model_max_length=trained.model_max_length,
    )
    tokenizer.chat_template = chat_template
    audio_offset = text_vocab + len(VISION_TOKENS_NAMED)
    assert token_id(tokenizer, "<end_of_image>") == text_vocab
    assert token_id(tokenizer, "<end_of_audio>") == audio_offset
    assert len(tokenizer) == audio_offset + len(AUDIO_TOKENS_NAMED)

    processor = Gemma3nProcessor(
        feature_extractor=Gemma3nAudioFeatureExtractor(),
        # Gemma 3n feeds MobileNet-V5 pixels in [0, 1], unnormalised.
        image_processor=SiglipImageProcessor(
            size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}, do_normalize=False
        ),
        tokenizer=tokenizer,
        chat_template=chat_template,
        image_seq_length=VISION_TOKENS,
    )
    config = Gemma3nConfig(
        text_config=Gemma3nTextConfig(
            vocab_size=len(tokenizer),
            vocab_size_per_layer_input=text_vocab,
            hidden_size=64,
            hidden_size_per_layer_input=16,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=16,
            layer_types=["sliding_attention", "full_attention"],
            sliding_window=512,
            num_kv_shared_layers=0,
            laurel_rank=8,
            activation_sparsity_pattern=[0.0, 0.0],
            max_position_embeddings=1024,
            initializer_range=0.2,  # as the demo's builder: lets LoRA make the loss fall fast
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        ),
        vision_config=Gemma3nVisionConfig(
            # The real mobilenetv5_300m_enc (~80 blocks), its channels cut 32-fold: 3.6M
            # parameters, most in the attention blocks' fixed head widths. Its own smaller block
            # lists cannot be passed: timm rewrites model_args' block_args in place, and the config
            # no longer saves. timm fixes the fusion adapter's width at 2048, so hidden_size stays.
            model_args={
                "channel_multiplier": 1 / 32,
                "stem_size": 16,
                "msfa_output_resolution": int(VISION_TOKENS**0.5),
            },
            vocab_size=len(VISION_TOKENS_NAMED),
            vocab_offset=text_vocab,
        ),
        audio_config=Gemma3nAudioConfig(
            vocab_size=len(AUDIO_TOKENS_NAMED),
            vocab_offset=audio_offset,
            hidden_size=32,
            conf_num_attention_heads=2,
            conf_num_hidden_layers=1,
            sscp_conv_channel_size=(8, 4),
        ),
        vision_soft_tokens_per_image=VISION_TOKENS,
        boi_token_id=token_id(tokenizer, "<start_of_image>"),
        eoi_token_id=token_id(tokenizer, "<end_of_image>"),
        image_token_id=token_id(tokenizer, "<image_soft_token>"),
        boa_token_id=token_id(tokenizer, "<start_of_audio>"),
        eoa_token_id=token_id(tokenizer, "<end_of_audio>"),
        audio_token_id=token_id(tokenizer, "<audio_soft_token>"),
        initializer_range=0.2,  # the composite model initialises every Linear with this one
    )
    model = Gemma3nForConditionalGeneration(config)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)


FAMILY = Family(
    name="gemma3n",
    model_type="gemma3n",
    chat_template="gemma3n",
    language_prefix="model.language_model.",
    tower_markers=("vision_tower", "audio_tower", "embed_vision", "embed_audio"),
    build=build,
    needs=("timm", "torchvision"),
)
