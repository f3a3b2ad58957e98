"""The exact training command and the environment it runs in.

Commands are argument lists, never shell strings: no value a user typed is ever read by a shell.
"""

from __future__ import annotations

import importlib.util
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from vlm_tui.core.errors import SetupError

TRAIN_MODULE = "axolotl.cli.train"
INSTALL_HINT = "install the training stack into this Python: pip install 'vlm-tui[train]'"


@dataclass(frozen=True)
class LaunchPlan:
    argv: tuple[str, ...]
    env: dict[str, str]
    cwd: str

    def shown(self) -> str:
        """The command as a user can paste it into a shell."""
        return shlex.join(self.argv)


def single_process_argv(config_path: Path, python: str = sys.executable) -> tuple[str, ...]:
    """The guide's single-GPU command: axolotl's trainer in this interpreter."""
    return (python, "-m", TRAIN_MODULE, str(config_path))


def training_environment(environ: Mapping[str, str], *, offline: bool) -> dict[str, str]:
    """The child's environment: the user's, plus what makes output live and runs private."""
    env = dict(environ)
    # Lines must reach train.log as they are printed, not when a buffer fills.
    env["PYTHONUNBUFFERED"] = "1"
    # The trainer's tqdm bar is where step/total, rate and ETA come from; this switch hides it.
    env.pop("HF_HUB_DISABLE_PROGRESS_BARS", None)
    # Axolotl's telemetry is on by default; a user who set the variable keeps their choice.
    env.setdefault("AXOLOTL_DO_NOT_TRACK", "1")
    if offline:
        # Everything is local: never let axolotl call the hub (its whoami check runs unless
        # HF_HUB_OFFLINE is exactly "1").
        env.setdefault("HF_HUB_OFFLINE", "1")
        env.setdefault("HF_DATASETS_OFFLINE", "1")
    return env


def require_training_stack(modules: tuple[str, ...] = ("axolotl", "accelerate")) -> None:
    """Fail with one line before launching if this Python cannot run the training."""
    for module in modules:
        if importlib.util.find_spec(module) is None:
            raise SetupError(f"{module} is not installed; {INSTALL_HINT}")
