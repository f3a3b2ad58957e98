"""Check a local dataset row by row before anything launches, and write what the training reads.

Every row is read (dataset_rows), turned into axolotl's `messages` format (dataset_formats) and
its images looked at: a local file must exist and start like an image (its header only), base64
must hold one, a URL is recognised and counted but not fetched. Relative image paths are read
from the folder of the file that names them first (what `data.jsonl` beside `images/` means),
then from the working folder.

The report counts rows, images, text-only and multi-image rows, and keeps every problem with
the row it is in. With `write_to`, the good rows are written there as JSON Lines with absolute
image paths: the file the training reads, kept in the run folder so every node reads the same
rows and the run records what it trained on.
"""

from __future__ import annotations

import json
import os
import shlex
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from vlm_tui.core.data.dataset_formats import Converted, RowProblem, convert, detect_format
from vlm_tui.core.data.dataset_rows import DatasetError, Row, read_rows
from vlm_tui.core.data.image_header import base64_image_kind, file_image_kind

# Problems printed by the front-ends; all of them are counted, and kept in the report.
SHOWN_PROBLEMS = 5
# Images in one row above this are a problem: no processor fits them in a sequence.
MAX_IMAGES_PER_ROW = 64
IMAGE_KINDS = "PNG, JPEG, GIF, WebP, BMP or TIFF"


@dataclass(frozen=True)
class RowIssue:
    where: str
    problem: str

    def line(self) -> str:
        return f"{self.where} {self.problem}"


@dataclass
class DataReport:
    source: Path
    rows: int = 0
    good_rows: int = 0
    images: int = 0
    url_images: int = 0
    text_only_rows: int = 0
    multi_image_rows: int = 0
    most_images_in_a_row: int = 0
    formats: Counter[str] = field(default_factory=Counter)
    problems: list[RowIssue] = field(default_factory=list)
    # Where each good row is in the source, in the order they were written out.
    good_where: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and self.good_rows > 0

    def summary_line(self) -> str:
        formats = ", ".join(f"{name} {count}" for name, count in self.formats.most_common())
        parts = [
            f"{self.rows} rows ({formats or 'no readable row'})",
            f"{self.images} images",
            f"{self.text_only_rows} text-only rows",
            f"{self.multi_image_rows} multi-image rows (at most {self.most_images_in_a_row})",
        ]
        if self.url_images:
            parts.append(f"{self.url_images} image URLs (not fetched here)")
        parts.append(f"{len(self.problems)} problem rows")
        return ", ".join(parts)

    def refusal(self) -> str:
        """The one line a refused launch or check prints (the report must not be ok)."""
        if not self.problems:
            return f"{self.source} holds no rows"
        first = self.problems[0].line()
        more = len(self.problems) - 1
        tail = (
            f" (and {more} more problem rows of {self.rows})" if more else f" (of {self.rows} rows)"
        )
        return f"{first}{tail}; vlm-tui check-data {shown_path(self.source)} lists them"

    def problem_lines(self, limit: int = SHOWN_PROBLEMS) -> list[str]:
        lines = [issue.line() for issue in self.problems[:limit]]
        if len(self.problems) > limit:
            lines.append(f"... and {len(self.problems) - limit} more")
        return lines


def shown_path(path: Path | str) -> str:
    """A path as one line can hold it: shell-quoted, or repr'd when it holds control
    characters (a newline in a name must not break the one-line error)."""
    text = str(path)
    return shlex.quote(text) if text.isprintable() else repr(text)


class ImageResolver:
    """Checks one image part in place: a relative path becomes the absolute one that exists."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._checked: dict[str, str | None] = {}  # absolute path -> problem (None: fine)

    def check(self, part: dict[str, Any], row_file: Path) -> str | None:
        """The problem with the image `part` (None when fine); fixes up its path."""
        if "url" in part:
            return None
        if "base64" in part:
            if base64_image_kind(part["base64"]) is None:
                return f"holds base64 that is not a {IMAGE_KINDS} image"
            return None
        reference = str(part.get("path", part.get("image", "")))
        found = self._locate(reference, row_file.parent.absolute())
        if found is None:
            shown = shown_path(reference)
            if not os.path.isabs(reference):
                places = f"{shown_path(row_file.parent.absolute())} and {shown_path(self.workdir)}"
                shown = f"{shown} (looked in {places})"
            return f"names image {shown}, which does not exist"
        part.pop("image", None)
        part["path"] = found
        if found not in self._checked:
            self._checked[found] = self._look_at(found)
        problem = self._checked[found]
        return None if problem is None else f"names image {shown_path(found)}, which {problem}"

    def _locate(self, reference: str, row_folder: Path) -> str | None:
        expanded = os.path.expanduser(reference)
        candidates = (
            [expanded]
            if os.path.isabs(expanded)
            else [os.path.join(row_folder, expanded), os.path.join(self.workdir, expanded)]
        )
        for candidate in candidates:
            if os.path.lexists(candidate):
                return os.path.abspath(candidate)
        return None

    @staticmethod
    def _look_at(path: str) -> str | None:
        try:
            kind = file_image_kind(path)
        except IsADirectoryError:
            return "is a folder"
        except OSError as error:
            return f"cannot be read ({error.strerror or error})"
        return None if kind is not None else f"is not a {IMAGE_KINDS} image"


def check_dataset(path: Path, workdir: Path, write_to: IO[str] | None = None) -> DataReport:
    """Read every row of the local dataset at `path`; DatasetError when it cannot be read at
    all. Good rows (converted) go to `write_to` when given."""
    report = DataReport(path)
    resolver = ImageResolver(workdir)
    first_format: tuple[str, str] | None = None
    for row in read_rows(path):
        report.rows += 1
        kind = _format_of(row)
        converted, problem = _convert_row(row, resolver)
        if kind is not None:
            report.formats[kind] += 1
            if first_format is None:
                first_format = (kind, row.where)
            elif problem is None and kind != first_format[0]:
                problem = (
                    f"is in the {kind} format, {first_format[1]} in"
                    f" {first_format[0]}: one dataset file holds one format"
                )
        if problem is not None:
            report.problems.append(RowIssue(row.where, problem))
            continue
        assert converted is not None
        report.good_rows += 1
        report.good_where.append(row.where)
        _count_images(report, converted)
        if write_to is not None:
            write_to.write(json.dumps({"messages": converted.messages}, ensure_ascii=False) + "\n")
    if report.rows == 0:
        raise DatasetError(f"{path} holds no rows")
    return report


def _format_of(row: Row) -> str | None:
    """The format a row is written in, whether or not it is a good row of it."""
    if row.value is None:
        return None
    try:
        return detect_format(row.value)
    except RowProblem:
        return None


def _convert_row(row: Row, resolver: ImageResolver) -> tuple[Converted | None, str | None]:
    if row.value is None:
        return None, row.problem or "cannot be read"
    try:
        converted = convert(row.value)
    except RowProblem as wrong:
        return None, str(wrong)
    images = [
        part for turn in converted.messages for part in turn["content"] if part["type"] == "image"
    ]
    if len(images) > MAX_IMAGES_PER_ROW:
        return converted, f"has {len(images)} images, over the {MAX_IMAGES_PER_ROW} a row may hold"
    for part in images:
        problem = resolver.check(part, row.file)
        if problem is not None:
            return converted, problem
    return converted, None


def _count_images(report: DataReport, converted: Converted) -> None:
    count = 0
    for turn in converted.messages:
        for part in turn["content"]:
            if part["type"] == "image":
                count += 1
                report.url_images += "url" in part
    report.images += count
    report.text_only_rows += count == 0
    report.multi_image_rows += count > 1
    report.most_images_in_a_row = max(report.most_images_in_a_row, count)


@dataclass(frozen=True)
class PreviewRow:
    """One row as a preview shows it: converted when it is good, its problem when not."""

    where: str
    format: str | None
    messages: list[dict[str, Any]] | None
    problem: str | None

    def first_image(self) -> str | None:
        """The first local image file the row names (None: none, or not a local file)."""
        for turn in self.messages or []:
            for part in turn["content"]:
                if part["type"] == "image" and "path" in part:
                    return str(part["path"])
        return None

    def text_lines(self) -> list[str]:
        if self.messages is None:
            return []
        return [
            f"{turn['role']}: "
            + " ".join(
                part["text"] if part["type"] == "text" else f"[image {_reference(part)}]"
                for part in turn["content"]
            )
            for turn in self.messages
        ]


def preview_rows(path: Path, workdir: Path, limit: int) -> list[PreviewRow]:
    """The first `limit` rows, good or bad, as a preview shows them."""
    rows: list[PreviewRow] = []
    resolver = ImageResolver(workdir)
    for row in read_rows(path):
        converted, problem = _convert_row(row, resolver)
        rows.append(
            PreviewRow(
                row.where,
                _format_of(row),
                None if converted is None else converted.messages,
                problem,
            )
        )
        if len(rows) >= limit:
            break
    return rows


def shown_rows(path: Path, workdir: Path, count: int) -> list[str]:
    """The first `count` usable rows as the training reads them, a line per turn."""
    if count <= 0:
        return []
    lines: list[str] = []
    resolver = ImageResolver(workdir)
    for row in read_rows(path):
        converted, problem = _convert_row(row, resolver)
        if converted is None or problem is not None:
            continue
        shown = PreviewRow(row.where, converted.format, converted.messages, None)
        lines.append(f"{row.where} ({converted.format}):")
        lines.extend(f"  {line}" for line in shown.text_lines())
        count -= 1
        if count == 0:
            break
    return lines


def _reference(part: dict[str, Any]) -> str:
    if "base64" in part:
        return f"base64, {len(part['base64'])} characters"
    return str(part.get("path") or part.get("url"))
