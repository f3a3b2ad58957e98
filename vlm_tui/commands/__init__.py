"""vlm-tui's subcommands: one module each, registered here, imported only when named.

Each module has `build_parser()` and `execute(options) -> int`; `vlm-tui` without a subcommand
is `run` (set up, launch, watch). Importing this package imports none of them, so `--help`
stays as fast as it is.
"""

from __future__ import annotations

import importlib
from types import ModuleType

DEFAULT = "run"
# The words a user types after `vlm-tui`, and the module that answers each.
COMMANDS: dict[str, str] = {
    "doctor": "vlm_tui.commands.doctor",
    "check-data": "vlm_tui.commands.check_data",
    "runs": "vlm_tui.commands.runs",
    "attach": "vlm_tui.commands.attach",
    "stop": "vlm_tui.commands.stop",
    "status": "vlm_tui.commands.status",
    "try": "vlm_tui.commands.try_run",
    "merge": "vlm_tui.commands.merge",
    "slurm": "vlm_tui.commands.slurm",
    DEFAULT: "vlm_tui.commands.run",
}


def load(name: str) -> ModuleType:
    return importlib.import_module(COMMANDS[name])
