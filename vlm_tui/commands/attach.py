"""`vlm-tui attach [RUN]`: watch a run again, in the TUI or in the terminal."""

from __future__ import annotations

import argparse

from vlm_tui.commands.common import find_run_folder, run_parser, spellings, tui


def build_parser() -> argparse.ArgumentParser:
    parser = run_parser("attach")
    parser.add_argument(*spellings("no_ui"), action="store_true", help="follow in the terminal")
    parser.add_argument("--theme", metavar="NAME", help="TUI colours")
    return parser


def execute(options: argparse.Namespace) -> int:
    paths = find_run_folder(options.run)
    if options.no_ui:
        from vlm_tui import headless

        return headless.attach(paths)
    return tui(options, None, attach_to=paths)
