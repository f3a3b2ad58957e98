"""A child with the training stack that reads one JSON request and answers in JSON lines.

`try` and `merge` load models, which vlm-tui's own process never does: each runs a module of
vlm_tui/training in a child, gives it the request on stdin and reads what it says line by line,
so a front-end shows each step as it comes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from typing import Any

from vlm_tui.core.errors import SetupError


def child_lines(
    module: str, request: Mapping[str, Any], environ: Mapping[str, str], doing: str
) -> Iterator[dict[str, Any]]:
    """Each JSON object the child prints, in order; SetupError("`doing` failed: why") when it
    says {"error": ...} or exits otherwise than 0. A caller that stops reading kills it."""
    with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as errors:
        child = subprocess.Popen(
            [sys.executable, "-m", module],
            env={**environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
        failure = None
        try:
            assert child.stdin is not None and child.stdout is not None
            child.stdin.write(json.dumps(request))
            child.stdin.close()
            for line in child.stdout:
                said = _said(line)
                if said is None:
                    continue
                if "error" in said:
                    failure = str(said["error"])
                else:
                    yield said
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
        raise SetupError(f"{doing} failed: {failure}")


def _said(line: str) -> dict[str, Any] | None:
    if not line.startswith("{"):
        return None
    try:
        found = json.loads(line)
    except ValueError:
        return None
    return found if isinstance(found, dict) else None
