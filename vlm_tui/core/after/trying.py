"""Ask a run's base model and fine-tuned weights, in a child with the training stack.

The child (vlm_tui/training/try_model.py) prints each answer as it has it; `ask` yields them as
they come, so a front-end fills its table row by row while the model still answers. A
`TrySession` keeps the child and its models loaded for more prompts (the Try screen's box).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from vlm_tui.core.after.child_lines import ChildSession, child_lines
from vlm_tui.core.after.try_request import TryItem, TryRequest

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


@dataclass(frozen=True)
class Unanswered:
    """A prompt of the user's the child could not ask (an image it cannot read)."""

    index: int
    why: str


Said = Loaded | Answer | Unanswered


def ask(request: TryRequest, environ: Mapping[str, str]) -> Iterator[Said]:
    """Load the models and yield what the child says, in order; SetupError when it fails."""
    for said in child_lines(CHILD_MODULE, request.child_request(), environ, "answering"):
        event = _event(said)
        if event is not None:
            yield event


class TrySession:
    """The request's answers, then those of prompts added with `ask_more`, from one child that
    keeps its models loaded until `close`."""

    def __init__(self, request: TryRequest, environ: Mapping[str, str]) -> None:
        self.asked = len(request.items)
        self._child = ChildSession(
            CHILD_MODULE, {**request.child_request(), "session": True}, environ, "answering"
        )

    def ask_more(self, items: list[TryItem]) -> int | None:
        """Send more prompts; the index of the first, or None when the child is gone."""
        first = self.asked
        if not self._child.send({"items": [{"messages": item.messages} for item in items]}):
            return None
        self.asked += len(items)
        return first

    def events(self) -> Iterator[Said]:
        """What the child says, as it comes, until it ends; SetupError when it fails."""
        for said in self._child.lines():
            event = _event(said)
            if event is not None:
                yield event

    def close(self) -> None:
        self._child.kill()


def _event(said: dict[str, object]) -> Said | None:
    if isinstance(loaded := said.get("loaded"), dict):
        return Loaded(str(loaded.get("device")), float(loaded.get("seconds", 0)))
    if "answer" in said:
        return Answer(int(str(said["index"])), str(said["model"]), one_line(str(said["answer"])))
    if isinstance(missed := said.get("unanswered"), dict):
        return Unanswered(int(str(missed.get("index"))), one_line(str(missed.get("why"))))
    return None


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


@dataclass(frozen=True)
class Agreement:
    """How many answers begin with the dataset's answer, of the items that have one."""

    tuned: int
    base: int
    checked: int

    def line(self) -> str:
        return (
            f"answers that begin with the dataset's answer: fine-tuned {self.tuned} of"
            f" {self.checked}, base {self.base} of {self.checked}"
        )


def agreement(items: list[TryItem], answers: Mapping[int, Mapping[str, str]]) -> Agreement | None:
    """None when no item has a reference answer (the user's own prompts only)."""
    checked = [(index, item.reference) for index, item in enumerate(items) if item.reference]
    if not checked:
        return None
    said = [(answers.get(index, {}), reference) for index, reference in checked]
    return Agreement(
        tuned=sum(answers_alike(got.get(TUNED, ""), reference) for got, reference in said),
        base=sum(answers_alike(got.get(BASE, ""), reference) for got, reference in said),
        checked=len(checked),
    )
