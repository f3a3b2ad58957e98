"""What the family builders share: the demo's corpus, a trained tokenizer, a seed.

Import torch and transformers inside functions only: the test process imports the family
modules to read their `Family` without paying for torch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

SEED = 1234
# The demo's prompt and captions (see vlm_tui.core.launch.demo): what the tokenizer must cover.
PROMPT = "What is this?"
COLOURS = ("red", "green", "blue", "yellow", "purple", "orange", "white", "cyan")
SHAPES = ("circle", "square", "triangle")
CAPTIONS = tuple(f"A {colour} {shape}." for shape in SHAPES for colour in COLOURS)
# Role names and words chat templates render around the turns.
TEMPLATE_WORDS = (
    "system",
    "user",
    "assistant",
    "model",
    "USER:",
    "ASSISTANT:",
    "You are a helpful assistant.",
)


def corpus(extra: Iterable[str] = ()) -> list[str]:
    return [*CAPTIONS, PROMPT, *TEMPLATE_WORDS, *extra]


def train_tokenizer(
    special_tokens: Iterable[str],
    *,
    bos: str | None,
    eos: str,
    pad: str,
    extra_special_tokens: Mapping[str, str] | None = None,
    vocab_size: int = 400,
    model_max_length: int = 1024,
    chat_template: str | None = None,
    extra_corpus: Iterable[str] = (),
) -> Any:
    """A byte-level BPE tokenizer trained on the demo's words; every special token added whole.

    `extra_special_tokens` names tokens the family's processor reads as attributes
    ({"image_token": "<|image_pad|>"}); they are added whole too.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = [token for token in [bos, eos, pad, *special_tokens] if token is not None]
    specials += [t for t in (extra_special_tokens or {}).values() if t not in specials]
    specials = list(dict.fromkeys(specials))
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(corpus(extra_corpus), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token=bos,
        eos_token=eos,
        pad_token=pad,
        additional_special_tokens=[t for t in specials if t not in {bos, eos, pad}],
        extra_special_tokens=dict(extra_special_tokens or {}),
        padding_side="right",
        model_max_length=model_max_length,
    )
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    return tokenizer


def token_id(tokenizer: Any, token: str) -> int:
    found = tokenizer.convert_tokens_to_ids(token)
    if not isinstance(found, int) or found == tokenizer.unk_token_id:
        raise ValueError(f"no single id for {token!r}: {found!r}")
    return found


def seed() -> None:
    import torch

    torch.manual_seed(SEED)
