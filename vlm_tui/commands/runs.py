"""`vlm-tui runs [--compare [RUN ...]]`: every run here; their throughput and speed-ups."""

from __future__ import annotations

import argparse
from pathlib import Path

from vlm_tui.commands.common import RUN_HELP, OneLineParser
from vlm_tui.core.errors import UserError


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="vlm-tui runs", allow_abbrev=False, description=RUN_HELP)
    parser.add_argument(
        "--compare",
        action="store_true",
        help="throughput, speed-up over one process, the guide's expectation, loss curves",
    )
    parser.add_argument(
        "names",
        nargs="*",
        metavar="RUN",
        help="with --compare: the runs to compare (default: every finished run)",
    )
    return parser


def execute(options: argparse.Namespace) -> int:
    from vlm_tui.core.records.folder import RUNS_FOLDER
    from vlm_tui.core.runs.run_index import run_folders, summarise, table_lines

    runs_root = Path.cwd() / RUNS_FOLDER
    if options.compare or options.names:
        return _compare(runs_root, options)
    summaries = [summarise(paths) for paths in run_folders(runs_root)]
    if not summaries:
        print(f"no runs under {runs_root}")
        return 0
    for line in table_lines(summaries):
        print(line)
    return 0


def _compare(runs_root: Path, options: argparse.Namespace) -> int:
    from vlm_tui.core.runs.scaling import report_lines, select_and_compare

    if not options.compare:
        raise UserError("run", "naming runs needs --compare; `vlm-tui runs` lists them all")
    print("\n".join(report_lines(select_and_compare(runs_root, options.names))))
    return 0
