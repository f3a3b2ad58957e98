"""`vlm-tui merge [RUN]`: the run's LoRA adapter merged into its base model, in a new folder
that loads alone (weights, processor, tokenizer, chat template, generation config)."""

from __future__ import annotations

import argparse
import os
import sys

from vlm_tui.commands.common import find_trained_run, run_parser

PREFIX = "[vlm-tui]"


def build_parser() -> argparse.ArgumentParser:
    parser = run_parser("merge", "the newest run that saved weights")
    parser.description = (
        "Merge a run's LoRA adapter into its base model and save the result, with the"
        " processor, tokenizer, the training's chat template and the generation config, into a"
        " new folder (default: beside the run's output, named <output>-merged) that"
        " AutoProcessor and AutoModelForImageTextToText load alone. Checked before it is kept:"
        " the saved model's logits on a dataset row against the base model with the adapter."
        " The run's output is only read; no folder is written over. " + (parser.description or "")
    )
    parser.add_argument(
        "--checkpoint", type=_step, metavar="STEP", help="merge checkpoint-STEP's adapter"
    )
    parser.add_argument("--to", metavar="FOLDER", help="the new folder (must not exist)")
    return parser


def _step(text: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise argparse.ArgumentTypeError("must be a whole number")
    return int(text)


def execute(options: argparse.Namespace) -> int:
    from vlm_tui.core.after.merge_request import merge_request
    from vlm_tui.core.after.merging import Verified, merge

    request = merge_request(
        find_trained_run(options.run), checkpoint=options.checkpoint, to=options.to
    )
    out = sys.stdout
    which = "final adapter" if request.step is None else f"adapter of step {request.step}"
    print(
        f"{PREFIX} merge {request.run.run_id}: {which} {request.adapter} into {request.base_model}",
        file=out,
        flush=True,
    )
    for said in merge(request, os.environ):
        if isinstance(said, Verified):
            print(
                f"{PREFIX} checked: logits of the saved model against base + adapter differ by at"
                f" most {said.max_abs_diff:.2e} (allowed {said.tolerance:.2e}, {said.logits:,}"
                " logits)",
                file=out,
                flush=True,
            )
        else:
            print(f"{PREFIX} merged model saved to {said.target} in {said.seconds:.1f} s", file=out)
    return 0
