"""What the subcommands share: the one-line parser, flag spellings, the run folder's argument,
the flags' values as settings, and the TUI's start."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from vlm_tui.core.errors import SetupError, UserError
from vlm_tui.core.request.settings import FIELDS, settings_from_values

if TYPE_CHECKING:
    from vlm_tui.core.records.folder import RunPaths

USAGE_ERROR = 2
RUN_HELP = (
    "Runs are the folders under runs/ in the current directory, then every run in the"
    " per-user runs index ($XDG_STATE_HOME/vlm-tui, by default ~/.local/state/vlm-tui)."
)


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a mistake is one line on stderr (no usage dump), exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message}\n")


def spellings(name: str) -> list[str]:
    """The guide spells flags with underscores; dashes work too."""
    dashed = name.replace("_", "-")
    return [f"--{name}"] if dashed == name else [f"--{name}", f"--{dashed}"]


def run_parser(command: str, default: str = "the newest live run") -> argparse.ArgumentParser:
    """A parser for a command about one run that already exists (attach, stop, status, ...)."""
    parser = OneLineParser(prog=f"vlm-tui {command}", allow_abbrev=False, description=RUN_HELP)
    parser.add_argument(
        "run",
        nargs="?",
        metavar="RUN",
        help=f"a run folder, its name, or a unique part of it (default: {default})",
    )
    return parser


def given(options: argparse.Namespace) -> dict[str, Any]:
    """The form's fields the flags gave."""
    return {
        spec.name: getattr(options, spec.name) for spec in FIELDS if hasattr(options, spec.name)
    }


def tui(
    options: argparse.Namespace,
    request: Any,
    attach_to: Any = None,
    *,
    try_run: Any = None,
    try_options: dict[str, Any] | None = None,
) -> int:
    """The interactive front-end, prefilled from the flags, or watching the run `attach_to`, or
    trying the run `try_run`.

    textual is imported only here.
    """
    from vlm_tui.theme_files import ThemeFileError, choose_theme, load_theme_specs

    if getattr(options, "dry_run", False):
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
    from vlm_tui.tui.widgets.picture import detect_image_support

    detect_image_support()
    from vlm_tui.tui.app import VlmTuiApp
    from vlm_tui.tui.setup_values import start_for

    workdir = Path.cwd()
    if request is None:
        from vlm_tui.core.launch.steps import LaunchRequest

        request = LaunchRequest(settings=settings_from_values({}, require_data=False))
    app = VlmTuiApp(
        start_for(request, os.environ, workdir),
        os.environ,
        workdir,
        theme=theme,
        skip_check=getattr(options, "skip_check", False),
        attach_to=attach_to,
        try_run=try_run,
        try_options=try_options,
    )
    code = app.run()
    return code if isinstance(code, int) else 0


def find_trained_run(query: str | None) -> RunPaths:
    """The run a RUN argument names (under ./runs, then in the runs index), or the newest one
    that saved weights (under ./runs, or in the index when ./runs holds no run)."""
    if query is not None:
        return find_run_folder(query)
    from vlm_tui.core.after.try_request import has_weights
    from vlm_tui.core.records.folder import RUNS_FOLDER
    from vlm_tui.core.runs.run_index import default_pool
    from vlm_tui.core.runs.user_index import indexed_runs

    runs_root = Path.cwd() / RUNS_FOLDER
    for paths in reversed(default_pool(runs_root, indexed_runs())):
        if has_weights(paths):
            return paths
    raise UserError("run", f"no run under {runs_root} saved weights yet; train one first")


def find_run_folder(query: str | None) -> RunPaths:
    """The run a RUN argument names, under ./runs first, then in the runs index (the newest
    live one when none is named)."""
    from vlm_tui.core.records.folder import RUNS_FOLDER
    from vlm_tui.core.runs.run_index import find_run
    from vlm_tui.core.runs.user_index import indexed_runs

    return find_run(Path.cwd() / RUNS_FOLDER, query, indexed_runs())


def find_job_or_run(query: str | None) -> RunPaths:
    """The run a RUN argument names, or the folder of the SLURM job it names (by job id or by
    name; such a folder holds only job.json until the job's node 0 starts)."""
    if query is not None and query.strip():
        from vlm_tui.core.records.folder import RUNS_FOLDER
        from vlm_tui.core.runs.job_runs import find_job_folder

        found = find_job_folder(Path.cwd() / RUNS_FOLDER, query)
        if found is not None:
            return found
        if query.isdigit():
            raise UserError("run", f"no run folder under ./{RUNS_FOLDER} records SLURM job {query}")
    return find_run_folder(query)
