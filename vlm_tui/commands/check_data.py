"""`vlm-tui check-data DATASET`: every row read as a launch would read it, counted if asked."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from vlm_tui.commands.common import OneLineParser, spellings
from vlm_tui.core.errors import UserError
from vlm_tui.core.request.settings import Settings, validate_field

# Problems a dataset check prints unless asked for all.
SHOWN_PROBLEMS = 5


def build_parser() -> argparse.ArgumentParser:
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
        *spellings("base_model"),
        type=_base_model,
        metavar="MODEL",
        help="count each row's tokens, image tokens included, with this model's processor",
    )
    parser.add_argument(
        *spellings("sequence_len"),
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


def execute(options: argparse.Namespace) -> int:
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
