"""Ask a run's base model and fine-tuned weights, in a child with the training stack.

The child (vlm_tui/training/try_model.py) prints each answer as it has it; `ask` yields them as
they come, so a front-end fills its table row by row while the model still answers.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from vlm_tui.core.after.child_lines import child_lines
from vlm_tui.core.after.try_request import TryRequest

CHILD_MODULE = "vlm_tui.training.try_model"
BASE, TUNED = "base", "tuned"


@dataclass(frozen=True)
class Loaded:
    device: str
    seconds: float


@dataclass(frozen=True)
class Answer:
    index: int  # of the request's items
    model: str  # BASE or TUNED
    text: str


def ask(request: TryRequest, environ: Mapping[str, str]) -> Iterator[Loaded | Answer]:
    """Load the models and yield what the child says, in order; SetupError when it fails."""
    for said in child_lines(CHILD_MODULE, request.child_request(), environ, "answering"):
        if "loaded" in said:
            loaded = said["loaded"]
            yield Loaded(str(loaded.get("device")), float(loaded.get("seconds", 0)))
        elif "answer" in said:
            yield Answer(int(said["index"]), str(said["model"]), one_line(str(said["answer"])))


def one_line(text: str) -> str:
    """An answer as a terminal may show it: one line, no control characters (a random model's
    tokens may spell an escape sequence)."""
    return "".join(char if char.isprintable() else "\ufffd" for char in " ".join(text.split()))


def answers_alike(answer: str, reference: str) -> bool:
    """Does an answer begin with the reference (case and spacing aside)? A model trained on
    answers with no end-of-turn token after them goes on past them."""
    said = " ".join(answer.lower().split())
    wanted = " ".join(reference.lower().split())
    return bool(wanted) and said.startswith(wanted)
