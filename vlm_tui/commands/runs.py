"""`vlm-tui runs [--compare [RUN ...]]`: every run here and in the runs index; their
throughput and speed-ups (those under ./runs)."""

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
    from vlm_tui.core.records.trackers_file import tracker_lines
    from vlm_tui.core.runs.run_index import listed_runs, summarise, table_lines
    from vlm_tui.core.runs.user_index import indexed_runs

    runs_root = Path.cwd() / RUNS_FOLDER
    if options.compare or options.names:
        return _compare(runs_root, options)
    summaries = [summarise(paths) for paths in listed_runs(runs_root, indexed_runs())]
    if not summaries:
        print(f"no runs under {runs_root} or in the runs index")
        return 0
    for line in table_lines(summaries, runs_root):
        print(line)
    # Under the table, not in a column: a tracker's folder or URL is wider than the table.
    for summary in summaries:
        for line in tracker_lines(summary.paths):
            print(f"{summary.paths.run_id}  {line}")
    return 0


def _compare(runs_root: Path, options: argparse.Namespace) -> int:
    from vlm_tui.core.runs.scaling import report_lines, select_and_compare

    if not options.compare:
        raise UserError("run", "naming runs needs --compare; `vlm-tui runs` lists them all")
    print("\n".join(report_lines(select_and_compare(runs_root, options.names))))
    return 0
