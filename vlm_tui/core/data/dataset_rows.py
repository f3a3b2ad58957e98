"""The rows of a local dataset, one at a time, whatever file type holds them.

JSON Lines (one object a line), JSON (a list of objects, or an object holding one list), CSV
(one row a line, cells as text; a cell holding a JSON list or object is read as one), Parquet
(through pyarrow, which the training stack brings), or a folder of such files. Each row comes
with where it is ("row 7", or "part-2.jsonl row 7" in a folder) so a problem can be named.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")
# A JSON Lines row above this is refused unread: no VLM sample is that large as text.
MAX_ROW_BYTES = 16 << 20


@dataclass(frozen=True)
class Row:
    where: str
    file: Path  # the file holding it: relative image paths are read from its folder first
    # The row's object, or None when it could not be read (then `problem` says why).
    value: dict[str, Any] | None
    problem: str | None = None


class DatasetError(Exception):
    """The dataset as a whole cannot be read (missing, empty, unknown type)."""


def dataset_files(path: Path) -> list[Path]:
    """The files a dataset path names: itself, or a folder's files of known types, sorted."""
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in SUFFIXES and p.is_file())
        if not files:
            raise DatasetError(f"{path} holds no {', '.join(SUFFIXES)} files")
        return files
    if not path.exists():
        raise DatasetError(f"{path} does not exist")
    if path.suffix.lower() not in SUFFIXES:
        raise DatasetError(f"{path.name}: not one of {', '.join(SUFFIXES)}")
    return [path]


def read_rows(path: Path) -> Iterator[Row]:
    """Every row of the dataset at `path`, in order; DatasetError when it cannot be read."""
    files = dataset_files(path)
    for file in files:
        prefix = f"{file.name} " if len(files) > 1 or path.is_dir() else ""
        reader = _READERS[file.suffix.lower()]
        for number, value, problem in reader(file):
            yield Row(f"{prefix}row {number}", file, value, problem)


Read = tuple[int, dict[str, Any] | None, str | None]


def _object_or_problem(value: Any) -> tuple[dict[str, Any] | None, str | None]:
    if isinstance(value, dict):
        return value, None
    return None, f"is {type(value).__name__}, not an object"


def _jsonl(file: Path) -> Iterator[Read]:
    try:
        source = file.open("rb")
    except OSError as error:
        raise DatasetError(f"{file}: {error.strerror or error}") from None
    with source:
        for number, line in enumerate(source, 1):
            if len(line) > MAX_ROW_BYTES:
                yield number, None, f"is {len(line) >> 20} MiB, over the {MAX_ROW_BYTES >> 20} MiB"
                continue
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except (ValueError, RecursionError) as error:
                yield number, None, f"is not valid JSON ({_short(error)})"
                continue
            yield number, *_object_or_problem(value)


def _json(file: Path) -> Iterator[Read]:
    try:
        value = json.loads(file.read_bytes())
    except OSError as error:
        raise DatasetError(f"{file}: {error.strerror or error}") from None
    except (ValueError, RecursionError) as error:
        raise DatasetError(f"{file.name} is not valid JSON ({_short(error)})") from None
    if isinstance(value, dict):
        lists = [item for item in value.values() if isinstance(item, list)]
        if len(lists) != 1:
            raise DatasetError(f"{file.name}: a JSON dataset is a list of rows (or holds one)")
        value = lists[0]
    if not isinstance(value, list):
        raise DatasetError(f"{file.name}: a JSON dataset is a list of rows")
    for number, item in enumerate(value, 1):
        yield number, *_object_or_problem(item)


def _csv_cell(text: str) -> Any:
    stripped = text.strip()
    if stripped[:1] in ("[", "{"):
        try:
            return json.loads(stripped)
        except ValueError:
            return text
    return text


def _csv(file: Path) -> Iterator[Read]:
    csv.field_size_limit(min(sys.maxsize, MAX_ROW_BYTES))
    try:
        source = file.open(newline="", encoding="utf-8")
    except OSError as error:
        raise DatasetError(f"{file}: {error.strerror or error}") from None
    with source:
        try:
            reader = csv.DictReader(source)
            for number, record in enumerate(reader, 1):
                if None in record:
                    yield number, None, "has more cells than the header has columns"
                    continue
                yield number, {key: _csv_cell(value or "") for key, value in record.items()}, None
        except (csv.Error, UnicodeDecodeError) as error:
            raise DatasetError(f"{file.name}: not readable as CSV ({_short(error)})") from None


def _parquet(file: Path) -> Iterator[Read]:
    try:
        import pyarrow.parquet as pq  # the training stack brings it; only Parquet needs it
    except ImportError:
        raise DatasetError("reading Parquet needs pyarrow: pip install pyarrow") from None
    try:
        table = pq.ParquetFile(file)
        batches = table.iter_batches(batch_size=1024)
        number = 0
        for batch in batches:
            for record in batch.to_pylist():
                number += 1
                yield number, record, None
    except Exception as error:  # pyarrow raises its own kinds for a damaged file
        raise DatasetError(f"{file.name}: not readable as Parquet ({_short(error)})") from None


_READERS = {".jsonl": _jsonl, ".json": _json, ".csv": _csv, ".parquet": _parquet}


def _short(error: BaseException) -> str:
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return text[:120]
