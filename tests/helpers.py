"""Shared test helpers: run the real `vlm-tui` command in a scratch folder."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def clean_environ(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without distributed variables that would change the mode."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key
        not in ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK", "NODE_RANK")
        and not key.startswith(("SLURM_", "PET_", "OMPI_", "PMI_", "SM_", "TORCHELASTIC_"))
    }
    env["PYTHONPATH"] = str(REPO)
    env.update(extra or {})
    return env


def run_cli(
    args: list[str], cwd: Path, env: Mapping[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vlm_tui", *args],
        cwd=cwd,
        env=dict(env) if env is not None else clean_environ(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_cli(args: list[str], cwd: Path, env: Mapping[str, str]) -> subprocess.Popen[str]:
    """The real `vlm-tui` command, running: its output (stdout and stderr) in one pipe."""
    return subprocess.Popen(
        [sys.executable, "-m", "vlm_tui", *args],
        cwd=cwd,
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
