"""axolotl's schema check itself, inside a child with the training stack.

`vlm_tui.core.checks.schema_check` runs this module and reads its one JSON line.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


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


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m vlm_tui.training.schema_check CONFIG.yml", file=sys.stderr)
        return 2
    print(json.dumps({"errors": check_in_this_process(Path(args[0]))}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
