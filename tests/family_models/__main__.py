"""The family models' two commands, each printing one JSON line.

`python -m tests.family_models build NAME DIR` writes family NAME's tiny model into DIR.
`python -m tests.family_models check MODEL DATASET TEMPLATE [--role_boundaries JSON]`:
what a builder must pass before its model can stand for the family, and what the family
tests ask of a run's model: the model and processor reload; the dataset's first row goes through
axolotl's own processing strategy and collator for TEMPLATE (as the training does), and the
tokens that carry labels are printed decoded; one forward and backward pass on that batch gives
a finite loss and gradients. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any


def _build(name: str, folder: Path) -> dict[str, Any]:
    from tests.family_models import family_named
    from tests.family_models.common import seed

    seed()
    folder.mkdir(parents=True, exist_ok=True)
    family_named(name).build(folder)
    return {"model_dir": str(folder)}


def _chat_template(template: str, processor: Any) -> str:
    if template == "tokenizer_default":
        tokenizer = getattr(processor, "tokenizer", processor)
        return str(processor.chat_template or tokenizer.chat_template)
    from axolotl.utils.chat_templates import get_chat_template

    return str(get_chat_template(template))


def _check(
    model_dir: str, dataset: Path, template: str, boundaries: list[Any] | None
) -> dict[str, Any]:
    import torch
    from axolotl.processing_strategies import get_processing_strategy
    from axolotl.utils.collators.mm_chat import MultiModalChatDataCollator
    from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(model_dir)
    model_type = AutoConfig.from_pretrained(model_dir).model_type
    chat_template = _chat_template(template, processor)
    strategy = get_processing_strategy(
        processor,
        chat_template,
        template,
        # axolotl's defaults for a chat_template dataset.
        roles_to_train=["assistant"],
        train_on_eos="turn",
        role_boundaries_override=boundaries or None,
        model_type=model_type,
    )
    collator = MultiModalChatDataCollator(processor.tokenizer, strategy)
    row = json.loads(dataset.read_text(encoding="utf-8").splitlines()[0])
    batch = collator([row])
    ids = batch["input_ids"][0]
    labels = batch["labels"][0]
    tokenizer = processor.tokenizer
    labelled = tokenizer.decode(ids[labels != -100].tolist())
    model = AutoModelForImageTextToText.from_pretrained(model_dir)
    model.train()
    inputs = {key: value for key, value in batch.items() if isinstance(value, torch.Tensor)}
    loss = model(**inputs).loss
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    return {
        "model_class": type(model).__name__,
        "processor_class": type(processor).__name__,
        "text": tokenizer.decode(ids.tolist()),
        "labelled": labelled,
        "labelled_tokens": int((labels != -100).sum()),
        "tokens": len(ids),
        "loss": float(loss),
        "finite": math.isfinite(float(loss)) and all(torch.isfinite(g).all() for g in grads),
        "parameters_with_grad": len(grads),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.family_models")
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build")
    build.add_argument("name")
    build.add_argument("folder", type=Path)
    check = commands.add_parser("check")
    check.add_argument("model_dir")
    check.add_argument("dataset", type=Path)
    check.add_argument("template")
    check.add_argument("--role_boundaries", type=json.loads, default=None)
    args = parser.parse_args(argv)
    if args.command == "build":
        result = _build(args.name, args.folder)
    else:
        result = _check(args.model_dir, args.dataset, args.template, args.role_boundaries)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
