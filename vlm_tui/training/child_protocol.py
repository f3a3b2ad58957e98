"""How vlm-tui's training-stack children talk: JSON requests on stdin, JSON lines out.

core/after/child_lines.py reads them: each step as a line as it happens, then {"done": true},
or {"error": "..."} and exit 1 whatever failed. The first request is the first line on stdin; a
child that serves more (`more_requests`) reads the next lines until stdin closes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from typing import Any


def emit(line: dict[str, Any]) -> None:
    print(json.dumps(line), flush=True)


def quiet() -> None:
    """Only the lines emitted reach stdout; the libraries' chatter goes nowhere."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)


# Loading a model takes every core it can; the screen that waits for it must still get the CPU
# when it needs it (a 2-core node: the Try screen stalled 190 ms at the child's default).
CHILD_NICENESS = 10


def serve(work: Callable[[dict[str, Any]], None]) -> int:
    """Run `work` on the request read from stdin; the exit code."""
    quiet()
    with contextlib.suppress(OSError):
        os.nice(CHILD_NICENESS)
    try:
        work(json.loads(sys.stdin.readline()))
    except Exception as error:  # one line for the front-end, whatever failed
        emit({"error": f"{type(error).__name__}: {error}"[:400]})
        return 1
    emit({"done": True})
    return 0


def more_requests() -> Iterator[dict[str, Any]]:
    """The requests after the first, as they come, until the front-end closes stdin."""
    for line in sys.stdin:
        if line.strip():
            found = json.loads(line)
            if isinstance(found, dict):
                yield found
