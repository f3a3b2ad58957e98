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
from vlm_tui.core.request.settings import (
    FIELDS,
    FIELDS_BY_NAME,
    Settings,
    config_file,
    settings_from_values,
    validate_field,
)

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
        " Also: `vlm-tui doctor` (the pre-flight checks alone), `vlm-tui runs [--compare]`"
        " (every run here; their speed-ups),"
        " `vlm-tui attach [RUN]` (watch a run again), `vlm-tui stop [RUN]`,"
        " `vlm-tui status [RUN]` (a run's state and its nodes).",
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
        *_spellings("skip_check"), action="store_true", help="skip axolotl's schema check"
    )
    mode.add_argument(
        *_spellings("skip_bad_rows"),
        action="store_true",
        help="train on a dataset's usable rows when some are not (they are listed in the run"
        " folder) instead of refusing it",
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


def build_run_parser(command: str) -> argparse.ArgumentParser:
    """`vlm-tui attach|runs|stop|status`: commands about runs that already exist."""
    parser = OneLineParser(prog=f"vlm-tui {command}", allow_abbrev=False, description=RUN_HELP)
    if command != "runs":
        parser.add_argument(
            "run",
            nargs="?",
            metavar="RUN",
            help="a run folder, its name, or a unique part of it (default: the newest live run)",
        )
    if command == "attach":
        parser.add_argument(
            *_spellings("no_ui"), action="store_true", help="follow in the terminal"
        )
        parser.add_argument("--theme", metavar="NAME", help="TUI colours")
    if command == "stop":
        parser.add_argument("--force", action="store_true", help="SIGTERM, then SIGKILL")
    if command == "runs":
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


def build_check_data_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="vlm-tui check-data",
        allow_abbrev=False,
        description=(
            "Read every row of a local dataset (JSON Lines, JSON, CSV, Parquet, or a folder of"
            " them) as a launch would: formats, roles, turns, every image's file and header."
            " Exit 0 when every row is usable, 2 when any is not."
        ),
    )
    parser.add_argument("dataset", metavar="DATASET", help="a dataset file or folder")
    parser.add_argument(
        "--show",
        type=_row_count,
        default=0,
        metavar="N",
        help="print the first N rows as the training will read them",
    )
    parser.add_argument(
        "--all_problems",
        "--all-problems",
        action="store_true",
        help="print every problem row, not the first few",
    )
    parser.add_argument(
        *_spellings("base_model"),
        type=_base_model,
        metavar="MODEL",
        help="count each row's tokens, image tokens included, with this model's processor",
    )
    parser.add_argument(
        *_spellings("sequence_len"),
        type=_sequence_len,
        default=Settings().sequence_len,
        metavar="N",
        help="with --base_model: the sequence_len to hold the rows against",
    )
    return parser


def _base_model(text: str) -> str:
    try:
        return str(validate_field("base_model", text))
    except UserError as error:
        raise argparse.ArgumentTypeError(error.message) from None


def _sequence_len(text: str) -> int:
    try:
        return int(validate_field("sequence_len", text))
    except UserError as error:
        raise argparse.ArgumentTypeError(error.message) from None


def _row_count(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 0 <= int(text) <= 1000:
        raise argparse.ArgumentTypeError("must be a whole number from 0 to 1000")
    return int(text)


# What a shell reports for a process ended by SIGPIPE, which is how `head` ends a writer.
CLOSED_PIPE = 128 + 13
RUN_HELP = "Runs are the folders under runs/ in the current directory."
RUN_COMMANDS = ("attach", "runs", "stop", "status")
# Errors about these are named as flags even though they are not form fields.
OWN_FLAGS = ("config", "theme", "dry_run", "resume", "detach", "skip_bad_rows")
# Problems a dataset check prints unless asked for all.
SHOWN_PROBLEMS = 5


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    command = args[0] if args[:1] and args[0] in ("doctor", "check-data", *RUN_COMMANDS) else None
    if command is not None:
        args = args[1:]
    if command in RUN_COMMANDS:
        options = build_run_parser(command).parse_args(args)
    elif command == "check-data":
        options = build_check_data_parser().parse_args(args)
    else:
        options = build_parser(f"vlm-tui {command}" if command else "vlm-tui").parse_args(args)
    try:
        if command == "doctor":
            code = _doctor(options)
        elif command == "check-data":
            code = _check_data(options)
        elif command in RUN_COMMANDS:
            code = _run_command(command, options)
        else:
            code = _run(options)
        # Inside the try: with buffered output a closed pipe only shows up at this flush.
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        # `vlm-tui runs | head`: the reader has gone, which is no error of ours. stdout now
        # points at /dev/null so the flush at exit cannot fail again; a run being followed
        # goes on under its supervisor, as when a terminal closes.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return CLOSED_PIPE
    except UserError as error:
        # Our own settings are named as flags; axolotl's keys as they appear in the YAML.
        known = error.field in FIELDS_BY_NAME or error.field in OWN_FLAGS
        flag = _spellings(error.field)[0] if known else error.field
        if error.field == "run":
            flag = "RUN"
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


def _check_data(options: argparse.Namespace) -> int:
    import tempfile

    from vlm_tui.core.data.dataset_check import check_dataset, shown_rows
    from vlm_tui.core.data.dataset_rows import DatasetError

    source = Path(options.dataset).expanduser()
    with tempfile.TemporaryDirectory(prefix="vlm-tui-check-data-") as scratch:
        rows = Path(scratch) / "rows.jsonl"
        try:
            with rows.open("w", encoding="utf-8") as sink:
                report = check_dataset(source, Path.cwd(), write_to=sink)
        except DatasetError as error:
            raise UserError("dataset", str(error)) from None
        print(f"{source}: {report.summary_line()}")
        limit = len(report.problems) if options.all_problems else SHOWN_PROBLEMS
        for line in report.problem_lines(limit):
            print(f"  {line}")
        for line in shown_rows(source, Path.cwd(), options.show):
            print(line)
        if options.base_model is not None and report.good_rows:
            _count_tokens(options.base_model, rows, options.sequence_len, report.good_where)
    if not report.ok:
        raise UserError("dataset", report.refusal())
    return 0


def _count_tokens(base_model: str, rows: Path, sequence_len: int, where: list[str]) -> None:
    """check-data --base_model: the good rows' tokens, counted as a launch counts them."""
    from vlm_tui.core.data.token_lengths import finish_count, start_count

    counted = finish_count(start_count(base_model, rows, os.environ))
    if isinstance(counted, str):
        print(counted)
        return
    print(counted.line())
    long_rows = counted.warning(sequence_len)
    if long_rows is not None:
        print(long_rows)
    elif counted.lengths:
        print(f"every row counted fits sequence_len {sequence_len}")
    failure = counted.failure(where)
    if failure is not None:
        print(failure)


def _run_command(command: str, options: argparse.Namespace) -> int:
    from vlm_tui import headless
    from vlm_tui.core.records.folder import RUNS_FOLDER
    from vlm_tui.core.runs.run_index import find_run, run_folders, summarise, table_lines

    runs_root = Path.cwd() / RUNS_FOLDER
    if command == "runs" and (options.compare or options.names):
        return _compare_runs(runs_root, options)
    if command == "runs":
        summaries = [summarise(paths) for paths in run_folders(runs_root)]
        if not summaries:
            print(f"no runs under {runs_root}")
            return 0
        for line in table_lines(summaries):
            print(line)
        return 0
    paths = find_run(runs_root, options.run)
    if command == "status":
        return headless.status(paths)
    if command == "stop":
        return headless.stop(paths, force=options.force)
    if options.no_ui:
        return headless.attach(paths)
    return _tui(options, None, attach_to=paths)


def _compare_runs(runs_root: Path, options: argparse.Namespace) -> int:
    from vlm_tui.core.runs.scaling import report_lines, select_and_compare

    if not options.compare:
        raise UserError("run", "naming runs needs --compare; `vlm-tui runs` lists them all")
    print("\n".join(report_lines(select_and_compare(runs_root, options.names))))
    return 0


def _run(options: argparse.Namespace) -> int:
    from vlm_tui.core.launch.steps import LaunchRequest
    from vlm_tui.core.request.axolotl_config import load_axolotl_yaml

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
        return _tui(options, request)
    from vlm_tui import headless

    return headless.run(
        request,
        os.environ,
        Path.cwd(),
        dry_run=options.dry_run,
        skip_check=options.skip_check,
        detach=options.detach,
    )


def _tui(options: argparse.Namespace, request: Any, attach_to: Any = None) -> int:
    """The interactive front-end, prefilled from the flags, or watching the run `attach_to`.

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
    from vlm_tui.tui.dataset_preview import detect_image_support

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
    )
    code = app.run()
    return code if isinstance(code, int) else 0
