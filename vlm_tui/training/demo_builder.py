"""Build the embedded demo: a tiny LLaVA-style model and a synthetic image-caption dataset.

Runs in a child with the training stack (torch, transformers, tokenizers, PIL):
``python -m vlm_tui.training.demo_builder build ROOT`` prints one JSON line of paths. Where the
demo lives and how it trains is `vlm_tui.core.launch.demo`.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Final

from vlm_tui.core.launch.demo import (
    DEMO_ASSETS_VERSION,
    DEMO_MODEL_NAME,
    DEMO_PROMPT,
    DEMO_TRAINING,
    IMAGE_SIZE,
    NUM_IMAGES,
    READY_MARKER,
    DemoAssets,
    demo_asset_paths,
    demo_assets_ready,
    demo_cache_root,
    version_dir,
)

PATCH_SIZE: Final = 8
IMAGE_TOKEN: Final = "<image>"
PAD_TOKEN: Final = "<pad>"
BOS_TOKEN: Final = "<s>"
EOS_TOKEN: Final = "</s>"
# The trained byte-level BPE vocabulary, before `<image>` and `<pad>` are added.
BPE_VOCAB_SIZE: Final = 370
_SEED: Final = 1234

_COLOURS: Final[dict[str, tuple[int, int, int]]] = {
    "red": (220, 30, 30),
    "green": (30, 180, 40),
    "blue": (40, 70, 230),
    "yellow": (240, 220, 30),
    "purple": (150, 40, 190),
    "orange": (245, 140, 20),
    "white": (245, 245, 245),
    "cyan": (30, 220, 220),
}
_SHAPES: Final = ("circle", "square", "triangle")
_BACKGROUND: Final = (20, 20, 20)
# Extra tokenizer corpus: the captions alone give only ~70 merges; this brings the vocabulary to
# BPE_VOCAB_SIZE and leaves words for prompts a user may try.
_EXTRA_CORPUS: Final = (
    "Describe the image.",
    "What colour is the shape?",
    "What shape is it?",
    "It is a small picture with one coloured shape in it.",
    "Circles are round, squares have four equal sides and triangles have three corners.",
)

# Copied from axolotl 0.19's `llava` template so the processor renders prompts the same way
# whether or not a config names `chat_template: llava`.
LLAVA_CHAT_TEMPLATE: Final = (
    "{% for message in messages %}{% if message['role'] != 'system' %}"
    "{{ message['role'].upper() + ': '}}{% endif %}"
    "{% if message['content'] is string %}{% if message['role'] != 'assistant' %}"
    "{{ message['content'] + ' '}}{% else %}{% generation %}{{ message['content'] + ' '}}"
    "{% endgeneration %}{% endif %}{% else %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}"
    "{{ '<image>\n' }}{% endfor %}"
    "{% if message['role'] != 'assistant' %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{{ content['text'] + ' '}}{% endfor %}{% else %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}"
    "{% generation %}{{ content['text'] + ' '}}{% endgeneration %}{% endfor %}"
    "{% endif %}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)

_BUILD_PREFIX: Final = ".building-"


def build_demo(root: Path) -> DemoAssets:
    """Build the demo under `root` unless it is already there; return its paths.

    The build goes into a fresh temporary folder beside its final place and is renamed into
    place in one step, so a crash or a concurrent builder never leaves a half-built folder that
    looks ready. Only that temporary folder is ever deleted; one left by a killed builder
    (`ROOT/.building-*`) stays until someone removes it.
    """
    root = Path(os.path.abspath(root.expanduser()))  # the dataset must hold absolute paths
    assets = demo_asset_paths(root)
    if demo_assets_ready(assets):
        return assets
    final = version_dir(root)
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=_BUILD_PREFIX + final.name + "-", dir=root))
    renamed = False
    try:
        _build_into(staging, final)
        staging.chmod(0o777 & ~_umask())  # mkdtemp makes it 0700; the cache is an ordinary folder
        try:
            # Atomic on POSIX; fails if `final` exists and is not empty.
            os.rename(staging, final)
            renamed = True
        except OSError as exc:
            if demo_assets_ready(assets):
                return assets  # another builder finished first; ours is discarded below
            raise RuntimeError(
                f"{final} exists but is not a complete demo build; remove it to rebuild"
            ) from exc
    finally:
        if not renamed:
            shutil.rmtree(staging, ignore_errors=True)
    return assets


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _build_into(staging: Path, final: Path) -> None:
    """Write every asset into `staging`; paths inside files point to `final`."""
    rows = _write_images(staging / "data" / "images", final / "data" / "images")
    dataset = staging / "data" / "demo.jsonl"
    with dataset.open("w", encoding="utf-8") as out:
        for image_path, caption in rows:
            out.write(json.dumps(_chat_row(image_path, caption)) + "\n")
    texts = [_render_text(caption) for _, caption in rows]
    texts += [f"The picture shows {c[0].lower()}{c[1:-1]} on a dark background." for _, c in rows]
    texts += _EXTRA_CORPUS
    n_params = _write_model(staging / "model", texts)
    marker = {
        "name": DEMO_MODEL_NAME,
        "version": DEMO_ASSETS_VERSION,
        "parameters": n_params,
        "examples": len(rows),
    }
    # Written last: its presence is what `demo_assets_ready` trusts.
    (staging / READY_MARKER).write_text(json.dumps(marker) + "\n", encoding="utf-8")


def _chat_row(image_path: Path, caption: str) -> dict[str, Any]:
    return {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "image", "path": str(image_path)},
                    {"type": "text", "text": DEMO_PROMPT},
                ],
            },
            {"role": "assistant", "content": [{"type": "text", "text": caption}]},
        ]
    }


def _render_text(caption: str) -> str:
    """The text the llava template produces for one row (the tokenizer's training corpus)."""
    return f"USER: {IMAGE_TOKEN}\n{DEMO_PROMPT} ASSISTANT: {caption} "


def _write_images(image_dir: Path, final_image_dir: Path) -> list[tuple[Path, str]]:
    """Draw NUM_IMAGES shapes; return (final absolute path, caption) pairs."""
    from PIL import Image, ImageDraw

    image_dir.mkdir(parents=True)
    rng = random.Random(_SEED)
    classes = [(colour, shape) for shape in _SHAPES for colour in _COLOURS]
    rows: list[tuple[Path, str]] = []
    for index in range(NUM_IMAGES):
        colour, shape = classes[index % len(classes)]
        size = rng.randint(14, 24)
        left = rng.randint(2, IMAGE_SIZE - size - 2)
        top = rng.randint(2, IMAGE_SIZE - size - 2)
        box = (left, top, left + size, top + size)
        image = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), _BACKGROUND)
        draw = ImageDraw.Draw(image)
        fill = _COLOURS[colour]
        if shape == "circle":
            draw.ellipse(box, fill=fill)
        elif shape == "square":
            draw.rectangle(box, fill=fill)
        else:
            corners = [(left + size / 2, top), (left, top + size), (left + size, top + size)]
            draw.polygon(corners, fill=fill)
        name = f"{index:03d}_{colour}_{shape}.png"
        image.save(image_dir / name, format="PNG")
        rows.append((final_image_dir / name, f"A {colour} {shape}."))
    return rows


def _write_model(model_dir: Path, texts: list[str]) -> int:
    """Train the tokenizer, make the processor and a random tiny LLaVA; return its size."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        PreTrainedTokenizerFast,
    )

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(  # type: ignore[no-untyped-call]
        vocab_size=BPE_VOCAB_SIZE,
        special_tokens=[BOS_TOKEN, EOS_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    # `<image>` is added whole below, so the corpus does not teach merges for it.
    bpe.train_from_iterator([t.replace(IMAGE_TOKEN, "") for t in texts], trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=bpe,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        extra_special_tokens={"image_token": IMAGE_TOKEN},  # adds it whole; LlavaProcessor reads it
        padding_side="right",
        model_max_length=int(DEMO_TRAINING["sequence_len"]),
    )

    image_processor = CLIPImageProcessor(
        size={"shortest_edge": IMAGE_SIZE},
        crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
    )
    processor = LlavaProcessor(  # type: ignore[no-untyped-call]
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=PATCH_SIZE,
        vision_feature_select_strategy="default",
        chat_template=LLAVA_CHAT_TEMPLATE,
        image_token=IMAGE_TOKEN,
        num_additional_image_tokens=1,  # CLIP's CLS token, dropped by the "default" strategy
    )

    pad_id = _token_id(tokenizer, PAD_TOKEN)
    config = LlavaConfig(
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
            max_position_embeddings=256,
            # With the usual 0.02 the final RMSNorm and a tiny lm_head cap the logits near +-1.3,
            # so LoRA alone cannot push the loss below ~4.9; 0.2 lets it reach ~0.3 in 32 steps.
            initializer_range=0.2,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=pad_id,
        ),
        image_token_index=_token_id(tokenizer, IMAGE_TOKEN),
        image_seq_length=(IMAGE_SIZE // PATCH_SIZE) ** 2,
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
    )
    torch.manual_seed(_SEED)  # same weights on every build
    model = LlavaForConditionalGeneration(config)
    model.save_pretrained(model_dir)
    processor.save_pretrained(model_dir)
    return sum(p.numel() for p in model.parameters())


def _quiet_libraries() -> None:
    """Keep the child's stderr for real errors: no progress bars or import-time chatter."""
    import logging

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    for name in ("torchao", "torch.utils._pytree"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _token_id(tokenizer: Any, token: str) -> int:
    token_id = tokenizer.convert_tokens_to_ids(token)
    if not isinstance(token_id, int):
        raise TypeError(f"no single id for {token!r}: {token_id!r}")
    return token_id


def main(argv: list[str] | None = None) -> int:
    """`python -m vlm_tui.training.demo_builder build [ROOT]`: build, print the paths as JSON."""
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] != "build" or len(args) > 2:
        print("usage: python -m vlm_tui.training.demo_builder build [ROOT]", file=sys.stderr)
        return 1
    root = Path(args[1]) if len(args) == 2 else demo_cache_root(os.environ)
    _quiet_libraries()
    try:
        assets = build_demo(root)
    except Exception as exc:  # the parent shows this one line to the user
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"demo build failed: {type(exc).__name__}: {message}", file=sys.stderr)
        return 1
    print(
        json.dumps({"model_dir": str(assets.model_dir), "dataset_path": str(assets.dataset_path)})
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
