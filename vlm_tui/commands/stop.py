"""`vlm-tui stop [RUN] [--force]`: ask a run's supervisor to stop it (saving, unless forced);
a SLURM job's run through SLURM (a job id works too)."""

from __future__ import annotations

import argparse

from vlm_tui.commands.common import find_job_or_run, run_parser


def build_parser() -> argparse.ArgumentParser:
    parser = run_parser("stop")
    parser.add_argument("--force", action="store_true", help="SIGTERM, then SIGKILL")
    return parser


def execute(options: argparse.Namespace) -> int:
    from vlm_tui import headless

    return headless.stop(find_job_or_run(options.run), force=options.force)
