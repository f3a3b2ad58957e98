"""`vlm-tui status [RUN]`: a run's state and its nodes, once."""

from __future__ import annotations

import argparse

from vlm_tui.commands.common import find_run_folder, run_parser


def build_parser() -> argparse.ArgumentParser:
    return run_parser("status")


def execute(options: argparse.Namespace) -> int:
    from vlm_tui import headless

    return headless.status(find_run_folder(options.run))
