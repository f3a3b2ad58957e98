"""`vlm-tui try [RUN]`: the base model's and the fine-tuned model's answers, side by side."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from vlm_tui.commands.common import find_trained_run, run_parser, spellings, tui

if TYPE_CHECKING:
    from vlm_tui.core.after.try_request import TryItem, TryRequest

PREFIX = "[vlm-tui]"
LABEL_WIDTH = 12


def build_parser() -> argparse.ArgumentParser:
    parser = run_parser("try", "the newest run that saved weights")
    parser.description = (
        "Answer rows of a run's dataset (held-out rows when the training kept some out, else its"
        " first rows) and your own images and prompts with the base model and with the weights"
        " the run saved, side by side. Greedy decoding, the training's chat template; the models"
        " load in a child process, on the GPU when there is one. " + (parser.description or "")
    )
    parser.add_argument(
        "--rows", type=_count(0, 1000), default=4, metavar="N", help="dataset rows (default 4)"
    )
    parser.add_argument(
        "--image", action="append", default=[], metavar="PATH", help="an image of yours (repeat)"
    )
    parser.add_argument(
        "--prompt",
        action="append",
        default=[],
        metavar="TEXT",
        help="a prompt: the Nth goes with the Nth --image; the rest are asked as text (repeat)",
    )
    parser.add_argument(
        "--checkpoint",
        type=_count(0, 10**12),
        metavar="STEP",
        help="the weights of checkpoint-STEP instead of the final ones",
    )
    parser.add_argument(
        *spellings("max_new_tokens"),
        type=_count(1, 4096),
        default=32,
        metavar="N",
        help="the longest answer, in tokens (default 32)",
    )
    parser.add_argument(
        *spellings("no_ui"),
        action="store_true",
        help="print the answers (the default when not in a terminal) instead of the Try screen",
    )
    parser.add_argument("--theme", metavar="NAME", help="TUI colours")
    return parser


def _count(low: int, high: int) -> Callable[[str], int]:
    def read(text: str) -> int:
        if not (text.isascii() and text.isdigit()) or not low <= int(text) <= high:
            raise argparse.ArgumentTypeError(f"must be a whole number from {low} to {high}")
        return int(text)

    return read


def execute(options: argparse.Namespace) -> int:
    from vlm_tui.core.after.try_request import try_request
    from vlm_tui.core.after.trying import Answer, Loaded, ask

    asked = {
        "rows": options.rows,
        "images": options.image,
        "prompts": options.prompt,
        "checkpoint": options.checkpoint,
        "max_new_tokens": options.max_new_tokens,
    }
    # Checked here, in both front-ends: a bad flag is one line and exit 2, before any screen.
    request = try_request(find_trained_run(options.run), **asked)
    if not options.no_ui and sys.stdin.isatty() and sys.stdout.isatty():
        return tui(options, None, try_run=request.run, try_options=asked)
    out = sys.stdout
    which = "final weights" if request.step is None else f"checkpoint at step {request.step}"
    kind = "adapter" if request.adapter else "weights"
    print(
        f"{PREFIX} try {request.run.run_id}: base {request.base_model}, {kind} {request.weights}"
        f" ({which}); greedy, up to {request.max_new_tokens} new tokens",
        file=out,
        flush=True,
    )
    answers: dict[int, dict[str, str]] = {}
    shown = 0
    for said in ask(request, os.environ):
        if isinstance(said, Loaded):
            print(f"{PREFIX} models loaded on {said.device} in {said.seconds:.1f} s", file=out)
        if not isinstance(said, Answer):
            continue
        answers.setdefault(said.index, {})[said.model] = said.text
        # An item is shown once both answers are in, in order.
        while shown < len(request.items) and len(answers.get(shown, {})) == 2:
            print("\n".join(item_lines(request.items[shown], answers[shown])), file=out, flush=True)
            shown += 1
    print(verdict_line(request, answers), file=out)
    return 0


def item_lines(item: TryItem, answers: dict[str, str]) -> list[str]:
    from vlm_tui.core.after.trying import BASE, TUNED

    lines = [f"{item.source}" + (f"  {item.image}" if item.image else "")]
    rows = [("prompt", item.prompt)]
    if item.reference is not None:
        rows.append(("reference", item.reference))
    rows += [("base", answers.get(BASE, "")), ("fine-tuned", answers.get(TUNED, ""))]
    lines += [f"  {label:<{LABEL_WIDTH}}{text}" for label, text in rows]
    return lines


def verdict_line(request: TryRequest, answers: dict[int, dict[str, str]]) -> str:
    """How many answers begin with the dataset's answer."""
    from vlm_tui.core.after.trying import agreement

    found = agreement(request.items, answers)
    if found is None:
        return f"{PREFIX} {len(request.items)} prompts answered"
    return f"{PREFIX} {found.line()}"
