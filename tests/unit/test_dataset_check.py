"""The dataset check before launch: every row read, every image looked at, problems named by row.

Broken datasets are refused by a real launch command (a dry run: the check runs before anything
is written) and by `vlm-tui check-data`, each with one line naming the first bad row, exit 2,
nothing created. The formats people have are converted into axolotl's, images relative to the
dataset file's folder first.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import refused, run_cli
from vlm_tui.cli import main
from vlm_tui.core.data.dataset_check import check_dataset
from vlm_tui.core.data.dataset_formats import CAPTION_PROMPT
from vlm_tui.core.data.dataset_rows import MAX_ROW_BYTES
from vlm_tui.core.data.image_header import base64_image_kind, image_kind

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 16
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 16


def user(*parts: Any) -> dict[str, Any]:
    return {"role": "user", "content": list(parts)}


def answer(text: str = "A red circle.") -> dict[str, Any]:
    return {"role": "assistant", "content": [{"type": "text", "text": text}]}


def image(path: str) -> dict[str, Any]:
    return {"type": "image", "path": path}


def text(value: str = "What is this?") -> dict[str, Any]:
    return {"type": "text", "text": value}


def good_row(picture: str = "images/0.png") -> dict[str, Any]:
    return {"messages": [user(image(picture), text()), answer()]}


def write_images(folder: Path, count: int = 3) -> None:
    (folder / "images").mkdir(parents=True, exist_ok=True)
    for number in range(count):
        (folder / "images" / f"{number}.png").write_bytes(PNG)


def jsonl(folder: Path, rows: list[Any], name: str = "data.jsonl") -> Path:
    write_images(folder)
    path = folder / name
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def raw(folder: Path, content: bytes, name: str = "data.jsonl") -> Path:
    write_images(folder)
    path = folder / name
    path.write_bytes(content)
    return path


def csv_file(folder: Path, header: list[str], rows: list[list[str]]) -> Path:
    write_images(folder)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    path = folder / "data.csv"
    path.write_text(out.getvalue())
    return path


def parquet(folder: Path, rows: list[dict[str, Any]]) -> Path:
    pa = pytest.importorskip("pyarrow", reason="Parquet needs pyarrow (the training stack's)")
    import pyarrow.parquet as pq

    write_images(folder)
    path = folder / "data.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def late_missing(folder: Path) -> Path:
    rows = [good_row() for _ in range(4999)] + [good_row("images/gone.png")]
    return jsonl(folder, rows)


def broken_link(folder: Path) -> Path:
    write_images(folder)
    os.symlink(folder / "nowhere.png", folder / "images" / "link.png")
    return jsonl(folder, [good_row(), good_row("images/link.png")])


def folder_as_image(folder: Path) -> Path:
    write_images(folder)
    (folder / "images" / "dir.png").mkdir()
    return jsonl(folder, [good_row("images/dir.png")])


def not_an_image(folder: Path) -> Path:
    write_images(folder)
    (folder / "images" / "note.png").write_text("just text")
    return jsonl(folder, [good_row(), good_row(), good_row("images/note.png")])


def empty_folder(folder: Path) -> Path:
    (folder / "set").mkdir(parents=True)
    (folder / "set" / "readme.txt").write_text("no data here")
    return folder / "set"


def many_images(folder: Path) -> Path:
    row = {"messages": [user(*[image("images/0.png")] * 65, text()), answer()]}
    return jsonl(folder, [row])


def huge_row(folder: Path) -> Path:
    row = {"messages": [user(text("x" * (MAX_ROW_BYTES + 10))), answer()]}
    return jsonl(folder, [good_row(), row])


B64_TEXT = base64.b64encode(b"hello, not an image at all").decode()

# (id, builder, what the line names: the row, then a fragment of the problem)
BROKEN: list[tuple[str, Callable[[Path], Path], str, str]] = [
    ("bad-json", lambda f: raw(f, b'{"messages": []}\n{not json\n'), "row 1", "non-empty list"),
    (
        "bad-json-late",
        lambda f: raw(f, (json.dumps(good_row()) + "\n{oops\n").encode()),
        "row 2",
        "not valid JSON",
    ),
    ("binary-garbage", lambda f: raw(f, b"\xff\xfe\x00garbage\n"), "row 1", "not valid JSON"),
    ("row-is-a-list", lambda f: jsonl(f, [[1, 2]]), "row 1", "is list, not an object"),
    (
        "wrong-role",
        lambda f: jsonl(f, [{"messages": [user(text()), {"role": "bot", "content": "x"}]}]),
        "row 1",
        "role is 'bot'",
    ),
    (
        "no-assistant",
        lambda f: jsonl(f, [{"messages": [user(image("images/0.png"), text())]}]),
        "row 1",
        "no assistant turn",
    ),
    (
        "empty-answer",
        lambda f: jsonl(f, [{"messages": [user(text()), answer("  ")]}]),
        "row 1",
        "no assistant text",
    ),
    (
        "two-user-turns",
        lambda f: jsonl(f, [{"messages": [user(text()), user(text()), answer()]}]),
        "row 1",
        "two user turns in a row",
    ),
    (
        "starts-with-answer",
        lambda f: jsonl(f, [{"messages": [answer(), user(text())]}]),
        "row 1",
        "must start",
    ),
    (
        "late-system",
        lambda f: jsonl(
            f, [{"messages": [user(text()), answer(), {"role": "system", "content": "x"}]}]
        ),
        "row 1",
        "system turn after",
    ),
    (
        "content-number",
        lambda f: jsonl(f, [{"messages": [{"role": "user", "content": 7}, answer()]}]),
        "row 1",
        "content must be text",
    ),
    (
        "video-part",
        lambda f: jsonl(f, [{"messages": [user({"type": "video", "path": "v.mp4"}), answer()]}]),
        "row 1",
        "type is 'video'",
    ),
    (
        "image-without-reference",
        lambda f: jsonl(f, [{"messages": [user({"type": "image"}, text()), answer()]}]),
        "row 1",
        "image with none of",
    ),
    (
        "image-in-answer",
        lambda f: jsonl(
            f,
            [
                {
                    "messages": [
                        user(text()),
                        {"role": "assistant", "content": [image("images/0.png"), text("x")]},
                    ]
                }
            ],
        ),
        "row 1",
        "image in an assistant turn",
    ),
    (
        "missing-relative-image",
        lambda f: jsonl(f, [good_row(), good_row("images/missing.png")]),
        "row 2",
        "does not exist",
    ),
    (
        "missing-absolute-image",
        lambda f: jsonl(f, [good_row("/nonexistent.invalid/x.png")]),
        "row 1",
        "does not exist",
    ),
    ("not-an-image", not_an_image, "row 3", "is not a PNG, JPEG"),
    ("folder-as-image", folder_as_image, "row 1", "is a folder"),
    ("unreadable-image", broken_link, "row 2", "cannot be read"),
    (
        "bad-base64",
        lambda f: jsonl(
            f, [{"messages": [user({"type": "image", "base64": "@@@not base64@@@"}), answer()]}]
        ),
        "row 1",
        "base64 that is not",
    ),
    (
        "base64-of-text",
        lambda f: jsonl(f, [{"messages": [user({"type": "image", "base64": B64_TEXT}), answer()]}]),
        "row 1",
        "base64 that is not",
    ),
    (
        "llava-placeholders",
        lambda f: jsonl(
            f,
            [
                {
                    "image": "images/0.png",
                    "conversations": [
                        {"from": "human", "value": "<image><image> what?"},
                        {"from": "gpt", "value": "x"},
                    ],
                }
            ],
        ),
        "row 1",
        "2 <image> placeholder(s) for 1 image(s)",
    ),
    (
        "llava-bad-speaker",
        lambda f: jsonl(
            f,
            [
                {
                    "image": "images/0.png",
                    "conversations": [
                        {"from": "human", "value": "<image>"},
                        {"from": "robot", "value": "x"},
                    ],
                }
            ],
        ),
        "row 1",
        "from is 'robot'",
    ),
    (
        "llava-missing-image",
        lambda f: jsonl(
            f,
            [
                {
                    "image": "images/9.png",
                    "conversations": [
                        {"from": "human", "value": "<image>\nwhat?"},
                        {"from": "gpt", "value": "x"},
                    ],
                }
            ],
        ),
        "row 1",
        "does not exist",
    ),
    (
        "hf-extra-images",
        lambda f: jsonl(
            f,
            [
                {
                    "images": ["images/0.png", "images/1.png"],
                    "messages": [user({"type": "image"}, text()), answer()],
                }
            ],
        ),
        "row 1",
        "more image(s) than",
    ),
    (
        "hf-too-few-images",
        lambda f: jsonl(
            f, [{"images": [], "messages": [user({"type": "image"}, text()), answer()]}]
        ),
        "row 1",
        "no image left",
    ),
    (
        "caption-not-text",
        lambda f: jsonl(f, [{"image": "images/0.png", "caption": 5}]),
        "row 1",
        "caption must be text",
    ),
    (
        "unknown-format",
        lambda f: jsonl(f, [{"instruction": "x", "output": "y"}]),
        "row 1",
        "has none of",
    ),
    (
        "mixed-formats",
        lambda f: jsonl(f, [good_row(), {"image": "images/0.png", "text": "A cat."}]),
        "row 2",
        "is in the caption format, row 1 in messages",
    ),
    ("huge-row", huge_row, "row 2", "MiB, over the 16 MiB"),
    ("too-many-images", many_images, "row 1", "65 images, over the 64"),
    ("empty-file", lambda f: raw(f, b""), "", "holds no rows"),
    ("blank-lines-only", lambda f: raw(f, b"\n\n  \n"), "", "holds no rows"),
    ("folder-without-data", empty_folder, "", "holds no .jsonl"),
    (
        "json-not-a-list",
        lambda f: raw(f, b'"just a string"', "data.json"),
        "",
        "a JSON dataset is a list",
    ),
    ("json-invalid", lambda f: raw(f, b"[{]", "data.json"), "", "is not valid JSON"),
    (
        "json-bad-row",
        lambda f: raw(f, json.dumps([good_row(), {"messages": "hi"}]).encode(), "data.json"),
        "row 2",
        "non-empty list",
    ),
    (
        "csv-extra-cells",
        lambda f: csv_file(f, ["image", "text"], [["images/0.png", "A cat.", "extra"]]),
        "row 1",
        "more cells than",
    ),
    (
        "csv-missing-image",
        lambda f: csv_file(
            f, ["image", "caption"], [["images/0.png", "A."], ["images/7.png", "B."]]
        ),
        "row 2",
        "does not exist",
    ),
    (
        "parquet-no-answer",
        lambda f: parquet(f, [{"messages": json.dumps([user(text())])}]),
        "row 1",
        "messages must be a non-empty list",
    ),
    ("missing-image-in-row-5000", late_missing, "row 5000", "does not exist"),
]


@pytest.mark.parametrize(("case", "build", "where", "fragment"), BROKEN, ids=[b[0] for b in BROKEN])
def test_a_broken_dataset_is_refused_before_launch_naming_its_row(
    case: str,
    build: Callable[[Path], Path],
    where: str,
    fragment: str,
    tmp_path_factory: pytest.TempPathFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    dataset = build(tmp_path_factory.mktemp(f"data-{case}"))
    args = ["--dataset_name", str(dataset), "--output_model_name", "m"]
    line = refused(args, tmp_path, monkeypatch, capsys)
    assert line.startswith("vlm-tui: error: --dataset_name: "), line
    assert f"{where} " in line if where else True, line
    assert fragment in line, line
    # check-data says the same, with exit 2.
    code = main(["check-data", str(dataset)])
    captured = capsys.readouterr()
    assert code == 2, captured.out + captured.err
    (error,) = captured.err.strip().splitlines()
    assert fragment in error and (not where or f"{where} " in error), error


def test_there_are_at_least_thirty_broken_datasets() -> None:
    assert len(BROKEN) >= 30


def test_check_data_counts_rows_images_and_problems(tmp_path: Path) -> None:
    rows = [
        good_row(),
        {"messages": [user(text()), answer()]},
        {"messages": [user(image("images/0.png"), image("images/1.png"), text()), answer()]},
        good_row("images/missing.png"),
    ]
    report = check_dataset(jsonl(tmp_path, rows), tmp_path)
    assert (report.rows, report.good_rows, report.images) == (4, 3, 3)
    assert (report.text_only_rows, report.multi_image_rows, report.most_images_in_a_row) == (
        1,
        1,
        2,
    )
    assert [issue.where for issue in report.problems] == ["row 4"]
    assert "4 rows (messages 4), 3 images" in report.summary_line()


def _converted(path: Path, workdir: Path) -> list[dict[str, Any]]:
    sink = io.StringIO()
    report = check_dataset(path, workdir, write_to=sink)
    assert report.ok, report.problems
    return [json.loads(line) for line in sink.getvalue().splitlines()]


def test_llava_rows_become_messages_with_absolute_images(tmp_path: Path) -> None:
    data = tmp_path / "llava"
    row = {
        "id": "1",
        "image": "images/0.png",
        "conversations": [
            {"from": "human", "value": "<image>\nWhat shape is this?"},
            {"from": "gpt", "value": "A circle."},
            {"from": "human", "value": "And its colour?"},
            {"from": "gpt", "value": "Red."},
        ],
    }
    dataset = raw(data, json.dumps([row]).encode(), "llava.json")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (converted,) = _converted(dataset, elsewhere)
    first = converted["messages"][0]
    assert first == {
        "role": "user",
        "content": [image(str(data / "images" / "0.png")), text("What shape is this?")],
    }
    assert [turn["role"] for turn in converted["messages"]] == [
        "user",
        "assistant",
        "user",
        "assistant",
    ]


def test_llava_rows_without_placeholders_put_the_image_first(tmp_path: Path) -> None:
    row = {
        "images": ["images/0.png"],
        "conversations": [{"from": "human", "value": "What?"}, {"from": "gpt", "value": "A."}],
    }
    (converted,) = _converted(jsonl(tmp_path, [row]), tmp_path)
    assert converted["messages"][0]["content"][0] == image(str(tmp_path / "images" / "0.png"))


def test_an_images_column_fills_the_placeholders_in_order(tmp_path: Path) -> None:
    row = {
        "images": ["images/0.png", "images/1.png"],
        "messages": [user({"type": "image"}, text("Compare"), {"type": "image"}), answer()],
    }
    (converted,) = _converted(jsonl(tmp_path, [row]), tmp_path)
    parts = converted["messages"][0]["content"]
    assert [part.get("path") for part in parts] == [
        str(tmp_path / "images" / "0.png"),
        None,
        str(tmp_path / "images" / "1.png"),
    ]


def test_caption_pairs_become_a_question_and_its_answer(tmp_path: Path) -> None:
    path = csv_file(tmp_path, ["image", "caption"], [["images/1.png", "A blue square."]])
    (converted,) = _converted(path, tmp_path)
    assert converted["messages"] == [
        user(image(str(tmp_path / "images" / "1.png")), text(CAPTION_PROMPT)),
        answer("A blue square."),
    ]


def test_a_relative_image_falls_back_to_the_working_folder(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "d.jsonl").write_text(json.dumps(good_row("pics/a.png")) + "\n")
    (tmp_path / "pics").mkdir()
    (tmp_path / "pics" / "a.png").write_bytes(JPEG)
    (converted,) = _converted(data / "d.jsonl", tmp_path)
    assert converted["messages"][0]["content"][0]["path"] == str(tmp_path / "pics" / "a.png")


def test_parquet_image_bytes_become_base64(tmp_path: Path) -> None:
    path = parquet(
        tmp_path,
        [{"image": {"bytes": PNG, "path": None}, "text": "A red circle."}],
    )
    (converted,) = _converted(path, tmp_path)
    part = converted["messages"][0]["content"][0]
    assert base64.b64decode(part["base64"]) == PNG


def test_a_folder_of_files_is_read_file_by_file(tmp_path: Path) -> None:
    folder = tmp_path / "set"
    jsonl(folder, [good_row()], "a.jsonl")
    jsonl(folder, [good_row(), good_row("images/9.png")], "b.jsonl")
    report = check_dataset(folder, tmp_path)
    assert report.rows == 3
    assert [issue.where for issue in report.problems] == ["b.jsonl row 2"]


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (PNG, "png"),
        (JPEG, "jpeg"),
        (b"GIF89a" + b"\x00" * 10, "gif"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", "webp"),
        (b"BM" + b"\x00" * 14, "bmp"),
        (b"II*\x00" + b"\x00" * 12, "tiff"),
        (b"%PDF-1.7", None),
        (b"", None),
    ],
)
def test_image_headers(head: bytes, kind: str | None) -> None:
    assert image_kind(head) == kind


def test_base64_images_and_data_urls() -> None:
    encoded = base64.b64encode(PNG).decode()
    assert base64_image_kind(encoded) == "png"
    assert base64_image_kind(f"data:image/png;base64,{encoded}") == "png"
    assert base64_image_kind(encoded[:-4] + "!!!!") is None
    assert base64_image_kind(B64_TEXT) is None


def test_skip_bad_rows_trains_on_the_rest_and_lists_what_it_left_out(tmp_path: Path) -> None:
    data = tmp_path / "data"
    dataset = jsonl(data, [good_row(), good_row("images/gone.png"), good_row("images/1.png")])
    work = tmp_path / "work"
    work.mkdir()
    args = ["--no-ui", "--dry-run", "--dataset_name", str(dataset), "--output_model_name", "m"]
    done = run_cli([*args, "--skip_bad_rows"], work)
    assert done.returncode == 0, done.stderr
    assert "training on 2 rows, leaving out 1" in done.stdout, done.stdout
    (run,) = (work / "runs").iterdir()
    assert len((run / "dataset.jsonl").read_text().splitlines()) == 2
    (problem,) = (run / "dataset-problems.txt").read_text().splitlines()
    assert "row 2 names image images/gone.png" in problem
    status = json.loads((run / "status.json").read_text())
    assert status["datasets"][0] == {
        "use": "train",
        "source": str(dataset),
        "copy": str(run / "dataset.jsonl"),
        "rows": 3,
        "good_rows": 2,
        "images": 2,
        "problem_rows": 1,
    }
    # Without the flag the same dataset is refused, and nothing is created.
    again = tmp_path / "again"
    again.mkdir()
    refused_run = run_cli(args, again)
    assert refused_run.returncode == 2 and list(again.iterdir()) == []


def test_the_users_dataset_is_never_modified(tmp_path: Path) -> None:
    rows = [
        {"image": "images/0.png", "text": "A cat."},
        {"image": "images/1.png", "text": "A dog."},
    ]
    dataset = jsonl(tmp_path / "data", rows)
    before = dataset.read_bytes(), dataset.stat().st_mtime_ns
    work = tmp_path / "work"
    work.mkdir()
    args = ["--no-ui", "--dry-run", "--dataset_name", str(dataset), "--output_model_name", "m"]
    assert run_cli(args, work).returncode == 0
    assert (dataset.read_bytes(), dataset.stat().st_mtime_ns) == before
