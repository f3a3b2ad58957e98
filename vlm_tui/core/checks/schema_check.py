"""Check a config with axolotl's own schema, in a child process.

`python -m vlm_tui.training.schema_check CONFIG.yml` prints one JSON line: {"errors": [...]} with
one {"field", "message"} per problem. Running it as a child keeps axolotl (and torch, which it
imports) out of the launcher: start-up stays instant, and only a launch pays for the check.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vlm_tui.core.errors import SetupError

CHECK_TIMEOUT_SECONDS = 300


def check_with_axolotl(config_path: Path, env: Mapping[str, str]) -> list[dict[str, str]]:
    """Run the check in a child; the list of field errors (empty when the config is valid)."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", "vlm_tui.training.schema_check", str(config_path)],
            env=dict(env),
            capture_output=True,
            text=True,
            timeout=CHECK_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise SetupError("axolotl's config check did not finish in time") from None
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise SetupError(f"axolotl's config check failed to run: {tail}")
    result: dict[str, Any] = json.loads(lines[-1])
    return list(result.get("errors", []))
