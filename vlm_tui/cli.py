"""The `vlm-tui` command line: flags -> a launch request -> the TUI or the headless run.

Every bad value ends here as one line naming the flag and what it accepts, with exit code 2,
before anything is created or launched.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

from vlm_tui import __version__
from vlm_tui.core.errors import SetupError, UserError
from vlm_tui.core.settings import FIELDS, FIELDS_BY_NAME, config_file, settings_from_values

USAGE_ERROR = 2


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a mistake is one line on stderr (no usage dump), exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message}\n")


def _spellings(name: str) -> list[str]:
    """The guide spells flags with underscores; dashes work too."""
    dashed = name.replace("_", "-")
    return [f"--{name}"] if dashed == name else [f"--{name}", f"--{dashed}"]


def build_parser(prog: str = "vlm-tui") -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog=prog,
        description="Launch and monitor vision-language model fine-tuning with Axolotl."
        " `vlm-tui doctor` runs the pre-flight checks alone.",
        allow_abbrev=False,
    )
    mode = parser.add_argument_group("what to run")
    mode.add_argument(*_spellings("no_ui"), action="store_true", help="run headless: log to stdout")
    mode.add_argument(
        "--demo", action="store_true", help="the embedded tiny VLM and dataset (offline, CPU)"
    )
    mode.add_argument(
        *_spellings("dry_run"),
        action="store_true",
        help="print and record the plan; launch nothing",
    )
    mode.add_argument(*_spellings("config"), metavar="FILE", help="start from an axolotl YAML")
    mode.add_argument(
        "--overwrite", action="store_true", help="allow an output folder that already holds files"
    )
    mode.add_argument(
        *_spellings("skip_check"), action="store_true", help="skip axolotl's schema check"
    )
    mode.add_argument(
        "--theme", metavar="NAME", help="TUI colours: a theme from themes/ (NO_COLOR honoured)"
    )
    mode.add_argument("--version", action="version", version=f"vlm-tui {__version__}")
    groups: dict[str, Any] = {}
    for spec in FIELDS:
        group = groups.get(spec.group)
        if group is None:
            group = groups[spec.group] = parser.add_argument_group(spec.group)
        if spec.is_flag:
            group.add_argument(
                *_spellings(spec.name),
                dest=spec.name,
                action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS,
                help=spec.help,
            )
        else:
            group.add_argument(
                *_spellings(spec.name),
                dest=spec.name,
                metavar="VALUE",
                default=argparse.SUPPRESS,
                help=spec.help,
            )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    doctor = args[:1] == ["doctor"]
    if doctor:
        args = args[1:]
    options = build_parser("vlm-tui doctor" if doctor else "vlm-tui").parse_args(args)
    try:
        return _doctor(options) if doctor else _run(options)
    except UserError as error:
        # Our own settings are named as flags; axolotl's keys as they appear in the YAML.
        known = error.field in FIELDS_BY_NAME or error.field in ("config", "theme", "dry_run")
        flag = _spellings(error.field)[0] if known else error.field
        print(f"vlm-tui: error: {flag}: {error.message}", file=sys.stderr)
        return USAGE_ERROR
    except SetupError as error:
        print(f"vlm-tui: error: {error}", file=sys.stderr)
        return 1


def _given(options: argparse.Namespace) -> dict[str, Any]:
    return {
        spec.name: getattr(options, spec.name) for spec in FIELDS if hasattr(options, spec.name)
    }


def _doctor(options: argparse.Namespace) -> int:
    from vlm_tui import headless

    settings = settings_from_values(_given(options), require_data=False)
    return headless.run_doctor(settings, os.environ, Path.cwd())


def _run(options: argparse.Namespace) -> int:
    from vlm_tui.core.axolotl_config import load_axolotl_yaml
    from vlm_tui.core.launch import LaunchRequest

    settings = settings_from_values(_given(options), require_data=False)
    loaded = None
    if options.config is not None:
        if options.demo:
            raise UserError("config", "cannot be combined with --demo")
        try:
            path = config_file(options.config)
        except ValueError as error:
            raise UserError("config", str(error)) from None
        loaded = load_axolotl_yaml(Path(path))
    request = LaunchRequest(
        settings=settings, loaded_config=loaded, demo=options.demo, overwrite=options.overwrite
    )
    if not options.no_ui:
        return _tui(options, request)
    from vlm_tui import headless

    return headless.run(
        request,
        os.environ,
        Path.cwd(),
        dry_run=options.dry_run,
        skip_check=options.skip_check,
    )


def _tui(options: argparse.Namespace, request: Any) -> int:
    """The interactive front-end, prefilled from the flags; textual is imported only here."""
    from vlm_tui.theme_files import ThemeFileError, choose_theme, load_theme_specs

    if options.dry_run:
        raise UserError("dry_run", "only applies with --no-ui; the TUI previews the command")
    try:
        names = [spec.name for spec in load_theme_specs()]
    except ThemeFileError as error:
        raise SetupError(str(error)) from None
    try:
        theme = choose_theme(options.theme, os.environ, names)
    except ValueError as error:
        raise UserError("theme", str(error)) from None
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise SetupError("the TUI needs a terminal; add --no-ui for batch jobs and scripts")
    from vlm_tui.tui.app import VlmTuiApp
    from vlm_tui.tui.setup_values import start_for

    workdir = Path.cwd()
    app = VlmTuiApp(
        start_for(request, os.environ, workdir),
        os.environ,
        workdir,
        theme=theme,
        skip_check=options.skip_check,
    )
    code = app.run()
    return code if isinstance(code, int) else 0
