"""`vlm-tui [flags]`: fill the form from flags (or a YAML), then the TUI or a headless run."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from vlm_tui import __version__
from vlm_tui.commands.common import OneLineParser, given, spellings, tui
from vlm_tui.core.errors import UserError
from vlm_tui.core.request.settings import FIELDS, config_file, settings_from_values


def build_parser(prog: str = "vlm-tui") -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog=prog,
        description="Launch and monitor vision-language model fine-tuning with Axolotl."
        " Also: `vlm-tui doctor` (the pre-flight checks alone), `vlm-tui runs [--compare]`"
        " (every run here and in the per-user index; their speed-ups),"
        " `vlm-tui attach [RUN]` (watch a run again), `vlm-tui stop [RUN]`,"
        " `vlm-tui status [RUN]` (a run's state and its nodes), `vlm-tui try [RUN]` (the base"
        " and the fine-tuned model's answers, side by side), `vlm-tui merge [RUN]` (the adapter"
        " merged into a model that loads alone), `vlm-tui slurm` (the same run as a SLURM job:"
        " its script written, and submitted with --submit).",
        allow_abbrev=False,
    )
    mode = parser.add_argument_group("what to run")
    mode.add_argument(*spellings("no_ui"), action="store_true", help="run headless: log to stdout")
    mode.add_argument(
        "--demo", action="store_true", help="the embedded tiny VLM and dataset (offline, CPU)"
    )
    mode.add_argument(
        *spellings("dry_run"),
        action="store_true",
        help="print and record the plan; launch nothing",
    )
    mode.add_argument(*spellings("config"), metavar="FILE", help="start from an axolotl YAML")
    mode.add_argument(
        "--overwrite", action="store_true", help="allow an output folder that already holds files"
    )
    mode.add_argument(
        "--resume",
        action="store_true",
        help="go on from the newest checkpoint in the output folder (the step count too)",
    )
    mode.add_argument(
        "--detach",
        action="store_true",
        help="with --no-ui: Ctrl+C leaves the run going instead of stopping it",
    )
    mode.add_argument(
        *spellings("skip_check"), action="store_true", help="skip axolotl's schema check"
    )
    mode.add_argument(
        *spellings("skip_bad_rows"),
        action="store_true",
        help="train on a dataset's usable rows when some are not (they are listed in the run"
        " folder) instead of refusing it",
    )
    mode.add_argument(
        "--theme", metavar="NAME", help="TUI colours: a theme from themes/ (NO_COLOR honoured)"
    )
    mode.add_argument("--version", action="version", version=f"vlm-tui {__version__}")
    add_field_flags(parser)
    return parser


def add_field_flags(parser: argparse.ArgumentParser) -> None:
    """A flag for every field of the form (core/request/settings.py:FIELDS), in its group."""
    groups: dict[str, Any] = {}
    for spec in FIELDS:
        group = groups.get(spec.group)
        if group is None:
            group = groups[spec.group] = parser.add_argument_group(spec.group)
        if spec.is_flag:
            group.add_argument(
                *spellings(spec.name),
                dest=spec.name,
                action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS,
                help=spec.help,
            )
        else:
            group.add_argument(
                *spellings(spec.name),
                dest=spec.name,
                metavar="VALUE",
                default=argparse.SUPPRESS,
                help=spec.help,
            )


def execute(options: argparse.Namespace) -> int:
    from vlm_tui.core.launch.steps import LaunchRequest
    from vlm_tui.core.request.axolotl_config import load_axolotl_yaml

    settings = settings_from_values(given(options), require_data=False)
    loaded = None
    if options.config is not None:
        if options.demo:
            raise UserError("config", "cannot be combined with --demo")
        try:
            path = config_file(options.config)
        except ValueError as error:
            raise UserError("config", str(error)) from None
        loaded = load_axolotl_yaml(Path(path))
    if options.resume and options.overwrite:
        raise UserError("resume", "cannot be combined with --overwrite: pick one")
    if options.detach and not options.no_ui:
        raise UserError("detach", "only applies with --no-ui; the TUI never stops a run on exit")
    request = LaunchRequest(
        settings=settings,
        loaded_config=loaded,
        demo=options.demo,
        overwrite=options.overwrite,
        resume=options.resume,
        skip_bad_rows=options.skip_bad_rows,
    )
    if not options.no_ui:
        return tui(options, request)
    from vlm_tui import headless

    return headless.run(
        request,
        os.environ,
        Path.cwd(),
        dry_run=options.dry_run,
        skip_check=options.skip_check,
        detach=options.detach,
    )
