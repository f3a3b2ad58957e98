"""A child with the training stack that reads JSON requests and answers in JSON lines.

`try` and `merge` load models, which vlm-tui's own process never does: each runs a module of
vlm_tui/training in a child, gives it the request as one line on stdin and reads what it says
line by line, so a front-end shows each step as it comes. A child that serves more than one
request (the Try screen keeps its models loaded for the user's prompts) reads further lines
until its stdin closes.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from typing import Any

from vlm_tui.core.errors import SetupError


class ChildSession:
    """One child: `send` more requests, `finish` when there are no more, read `lines`."""

    def __init__(
        self, module: str, request: Mapping[str, Any], environ: Mapping[str, str], doing: str
    ) -> None:
        self.doing = doing
        # Lives as long as the child; `lines` closes it at the child's end.
        self._errors = tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace")  # noqa: SIM115
        self._child = subprocess.Popen(
            [sys.executable, "-m", module],
            env={**environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._errors,
            text=True,
        )
        self.send(request)

    def send(self, request: Mapping[str, Any]) -> bool:
        """Hand the child one more request; False when it is gone (its end says why)."""
        stdin = self._child.stdin
        if stdin is None or stdin.closed:
            return False
        try:
            stdin.write(json.dumps(request) + "\n")
            stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            return False
        return True

    def finish(self) -> None:
        """No more requests: the child ends once it has answered those it has."""
        stdin = self._child.stdin
        if stdin is not None and not stdin.closed:
            with contextlib.suppress(BrokenPipeError, OSError):
                stdin.close()

    def lines(self) -> Iterator[dict[str, Any]]:
        """Each JSON object the child prints, in order; SetupError("`doing` failed: why") when
        it says {"error": ...} or exits otherwise than 0. A caller that stops reading kills it."""
        failure = None
        try:
            assert self._child.stdout is not None
            for line in self._child.stdout:
                said = _said(line)
                if said is None:
                    continue
                if "error" in said:
                    failure = str(said["error"])
                else:
                    yield said
            code = self._child.wait()
        finally:
            self.kill()
        if failure is None and code != 0:
            self._errors.seek(0)
            tail = [line for line in self._errors.read().splitlines() if line.strip()]
            failure = (tail or [f"exit code {code}"])[-1][:300]
        self._errors.close()
        if failure is not None:
            raise SetupError(f"{self.doing} failed: {failure}")

    def kill(self) -> None:
        """End the child now, if it still runs: nothing may outlive its reader."""
        self.finish()
        if self._child.poll() is None:
            self._child.kill()
            self._child.wait()


def child_lines(
    module: str, request: Mapping[str, Any], environ: Mapping[str, str], doing: str
) -> Iterator[dict[str, Any]]:
    """A child with one request: each JSON object it prints, in order (see ChildSession)."""
    session = ChildSession(module, request, environ, doing)
    session.finish()
    yield from session.lines()


def _said(line: str) -> dict[str, Any] | None:
    if not line.startswith("{"):
        return None
    try:
        found = json.loads(line)
    except ValueError:
        return None
    return found if isinstance(found, dict) else None
