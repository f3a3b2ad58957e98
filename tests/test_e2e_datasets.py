"""The datasets people have train for real: LLaVA/ShareGPT and an `images` column, each beside
its images with paths relative to the dataset file, launched from another folder.

The demo's model trains on them (real axolotl, CPU); the run folder holds the converted rows the
training read, with absolute image paths, and the user's files are untouched.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import clean_environ, only_run, run_cli
from vlm_tui.core import demo, launch

pytestmark = pytest.mark.e2e

ROWS = 32  # x 2 epochs / batch 4: 16 steps, enough for the loss to fall


def _demo_rows(demo_cache: Path, data: Path) -> list[tuple[str, str, str]]:
    """(image name, question, answer) of the demo's first rows, their images copied to data."""
    environ = clean_environ({"VLM_TUI_CACHE_DIR": str(demo_cache)})
    assets = demo.demo_asset_paths(demo.demo_cache_root(environ))
    launch.build_demo_assets(assets, environ)
    (data / "images").mkdir(parents=True)
    rows = []
    for line in assets.dataset_path.read_text().splitlines()[:ROWS]:
        user, reply = json.loads(line)["messages"]
        picture = Path(next(p["path"] for p in user["content"] if p["type"] == "image"))
        question = next(p["text"] for p in user["content"] if p["type"] == "text")
        shutil.copy(picture, data / "images" / picture.name)
        rows.append((picture.name, question, reply["content"][0]["text"]))
    return rows


def _launch_from_elsewhere(
    dataset: Path, tmp_path: Path, demo_cache: Path
) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """`vlm-tui --no-ui --demo --dataset_name DATASET` from a folder the dataset is not in."""
    work = tmp_path / "elsewhere"
    work.mkdir()
    done = run_cli(
        ["--no-ui", "--demo", "--dataset_name", str(dataset)],
        work,
        clean_environ({"VLM_TUI_CACHE_DIR": str(demo_cache)}),
    )
    return work, done


def _train_from_elsewhere(dataset: Path, kind: str, tmp_path: Path, demo_cache: Path) -> None:
    """Train the demo model on `dataset` from a folder that is not the dataset's: exit 0, the
    loss falls, and the run read its own converted copy with absolute image paths."""
    before = dataset.read_text()
    work, done = _launch_from_elsewhere(dataset, tmp_path, demo_cache)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    assert f"dataset: {ROWS} rows ({kind} {ROWS}), {ROWS} images" in done.stdout, done.stdout
    run = only_run(work)
    assert str(run / "dataset.jsonl") in (run / "config.yml").read_text()
    copied = [json.loads(line) for line in (run / "dataset.jsonl").read_text().splitlines()]
    assert len(copied) == ROWS
    first_image = copied[0]["messages"][0]["content"][0]
    assert first_image["type"] == "image"
    assert first_image["path"].startswith(str(dataset.parent / "images")), first_image
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "finished" and status["exit_code"] == 0, status
    assert status["datasets"][0]["good_rows"] == ROWS
    assert status["first_loss"] > status["final_loss"], status
    assert dataset.read_text() == before


def test_a_llava_dataset_with_relative_images_trains(demo_cache: Path, tmp_path: Path) -> None:
    data = tmp_path / "llava"
    rows: list[dict[str, Any]] = [
        {
            "id": str(number),
            "image": f"images/{name}",
            "conversations": [
                {"from": "human", "value": f"<image>\n{question}"},
                {"from": "gpt", "value": answer},
            ],
        }
        for number, (name, question, answer) in enumerate(_demo_rows(demo_cache, data))
    ]
    dataset = data / "train.json"
    dataset.write_text(json.dumps(rows))
    _train_from_elsewhere(dataset, "llava", tmp_path, demo_cache)


def test_an_images_column_dataset_with_relative_images_trains(
    demo_cache: Path, tmp_path: Path
) -> None:
    data = tmp_path / "hf"
    lines = [
        json.dumps(
            {
                "images": [f"images/{name}"],
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image"}, {"type": "text", "text": question}],
                    },
                    {"role": "assistant", "content": [{"type": "text", "text": answer}]},
                ],
            }
        )
        for name, question, answer in _demo_rows(demo_cache, data)
    ]
    dataset = data / "train.jsonl"
    dataset.write_text("\n".join(lines) + "\n")
    _train_from_elsewhere(dataset, "hf-images", tmp_path, demo_cache)


def test_a_missing_image_in_a_late_row_is_refused_before_launch(
    demo_cache: Path, tmp_path: Path
) -> None:
    data = tmp_path / "late"
    rows = _demo_rows(demo_cache, data)
    lines = [
        json.dumps({"image": f"images/{rows[n % ROWS][0]}", "text": rows[n % ROWS][2]})
        for n in range(2000)
    ]
    lines[-1] = json.dumps({"image": "images/gone.png", "text": "A lost shape."})
    dataset = data / "captions.jsonl"
    dataset.write_text("\n".join(lines) + "\n")
    work, done = _launch_from_elsewhere(dataset, tmp_path, demo_cache)
    assert done.returncode == 2, done.stdout[-3000:] + done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert "--dataset_name: row 2000 names image images/gone.png" in line, line
    assert "which does not exist" in line, line
    assert list(work.iterdir()) == []
