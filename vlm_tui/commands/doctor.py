"""`vlm-tui doctor [flags]`: the pre-flight checks alone, for the settings the flags give."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from vlm_tui.commands import run
from vlm_tui.commands.common import given
from vlm_tui.core.request.settings import settings_from_values


def build_parser() -> argparse.ArgumentParser:
    return run.build_parser("vlm-tui doctor")


def execute(options: argparse.Namespace) -> int:
    from vlm_tui import headless

    settings = settings_from_values(given(options), require_data=False)
    return headless.run_doctor(settings, os.environ, Path.cwd())
