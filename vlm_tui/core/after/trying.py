"""Ask a run's base model and fine-tuned weights, in a child with the training stack.

The child (vlm_tui/training/try_model.py) prints each answer as it has it; `ask` yields them as
they come, so a front-end fills its table row by row while the model still answers.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from vlm_tui.core.after.try_request import TryRequest
from vlm_tui.core.errors import SetupError

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
    with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as errors:
        child = subprocess.Popen(
            [sys.executable, "-m", CHILD_MODULE],
            env={**environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
        try:
            assert child.stdin is not None and child.stdout is not None
            child.stdin.write(json.dumps(request.child_request()))
            child.stdin.close()
            failure = None
            for line in child.stdout:
                said = _said(line)
                if said is None:
                    continue
                if "error" in said:
                    failure = str(said["error"])
                elif "loaded" in said:
                    loaded = said["loaded"]
                    yield Loaded(str(loaded.get("device")), float(loaded.get("seconds", 0)))
                elif "answer" in said:
                    text = one_line(str(said["answer"]))
                    yield Answer(int(said["index"]), str(said["model"]), text)
            code = child.wait()
        finally:
            if child.poll() is None:  # the caller stopped listening: nothing may outlive it
                child.kill()
                child.wait()
        if failure is None and code != 0:
            errors.seek(0)
            tail = [line for line in errors.read().splitlines() if line.strip()]
            failure = (tail or [f"exit code {code}"])[-1][:300]
    if failure is not None:
        raise SetupError(f"the models could not answer: {failure}")


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


def _said(line: str) -> dict[str, Any] | None:
    if not line.startswith("{"):
        return None
    try:
        found = json.loads(line)
    except ValueError:
        return None
    return found if isinstance(found, dict) else None
