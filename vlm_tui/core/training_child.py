"""A pre-launch check that runs in a child with the training stack and answers one JSON line.

The token count and the read of the model's layers import torch and transformers, which
vlm-tui's own process never does; both start here beside axolotl's schema check and are read
back the same way.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from typing import Any


def start_child(module: str, args: list[str], environ: Mapping[str, str]) -> subprocess.Popen[str]:
    """`python -m module args`, never on the network (a model not local or cached is skipped)."""
    return subprocess.Popen(
        [sys.executable, "-m", module, *args],
        env={**environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish_child(child: subprocess.Popen[str], timeout_s: float) -> dict[str, Any] | str:
    """The child's last JSON line, or why there is none (its time ran out, its stderr's end)."""
    try:
        out, err = child.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()
        return f"took over {int(timeout_s)} s"
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if child.returncode != 0 or not lines:
        return (err.strip().splitlines() or ["no output"])[-1][:200]
    found: dict[str, Any] = json.loads(lines[-1])
    return found
