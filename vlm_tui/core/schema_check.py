"""Check a config with axolotl's own schema, in a child process.

`python -m vlm_tui.core.schema_check CONFIG.yml` prints one JSON line: {"errors": [...]} with
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


def _field_errors(error: Exception) -> list[dict[str, str]]:
    details = getattr(error, "errors", None)
    if callable(details):
        found = []
        for item in details():
            location = ".".join(str(part) for part in item.get("loc", ()) if part != "__root__")
            found.append({"field": location or "config", "message": str(item.get("msg", ""))})
        if found:
            return found
    return [{"field": "config", "message": f"{type(error).__name__}: {error}"}]


def check_in_this_process(config_path: Path) -> list[dict[str, str]]:
    """Validate with axolotl's pydantic schema (imports axolotl: run it in a child)."""
    import yaml
    from axolotl.utils.config import prepare_plugins, validate_config
    from axolotl.utils.dict import DictDefault

    cfg = DictDefault(yaml.safe_load(config_path.read_text(encoding="utf-8")))
    try:
        prepare_plugins(cfg)
        validate_config(cfg)
    except Exception as error:  # the schema reports problems as exceptions of many kinds
        return _field_errors(error)
    return []


def check_with_axolotl(config_path: Path, env: Mapping[str, str]) -> list[dict[str, str]]:
    """Run the check in a child; the list of field errors (empty when the config is valid)."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", "vlm_tui.core.schema_check", str(config_path)],
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


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m vlm_tui.core.schema_check CONFIG.yml", file=sys.stderr)
        return 2
    print(json.dumps({"errors": check_in_this_process(Path(args[0]))}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
