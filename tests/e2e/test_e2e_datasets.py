"""The datasets people have train for real: LLaVA/ShareGPT and an `images` column, each beside
its images with paths relative to the dataset file, launched from another folder; and the
evaluation a user asks for (a held-out share, or a dataset of its own) is shown everywhere.

The demo's model trains on them (real axolotl, CPU); the run folder holds the converted rows the
training read, with absolute image paths, and the user's files are untouched.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import clean_environ, only_run, run_cli
from tests.tui.test_setup_screen import SIZE, make_app, wait_for
from vlm_tui.core.launch import demo, steps
from vlm_tui.core.records.folder import RunPaths
from vlm_tui.tui.monitor_screen import MonitorScreen
from vlm_tui.tui.setup_screen import SetupScreen
from vlm_tui.tui.widgets.loss_chart import LossChart

pytestmark = pytest.mark.e2e

ROWS = 32  # x 2 epochs / batch 4: 16 steps, enough for the loss to fall


def _demo_rows(demo_cache: Path, data: Path) -> list[tuple[str, str, str]]:
    """(image name, question, answer) of the demo's first rows, their images copied to data."""
    environ = clean_environ({"VLM_TUI_CACHE_DIR": str(demo_cache)})
    assets = demo.demo_asset_paths(demo.demo_cache_root(environ))
    steps.build_demo_in_child(assets, environ)
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
    assert f"dataset_name: {ROWS} rows ({kind} {ROWS}), {ROWS} images" in done.stdout, done.stdout
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


def test_the_demo_with_a_validation_split_shows_its_eval_loss_everywhere(
    demo_cache: Path, tmp_path: Path
) -> None:
    environ = clean_environ({"VLM_TUI_CACHE_DIR": str(demo_cache)})
    done = run_cli(
        ["--no-ui", "--demo", "--val_set_size", "0.25", "--eval_steps", "4"], tmp_path, environ
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    run = only_run(tmp_path)
    status = json.loads((run / "status.json").read_text())
    evals = [
        record
        for record in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
        if record["kind"] == "eval"
    ]
    # 48 training rows, 12 steps an epoch, 24 in all: evaluated at the start and every 4 steps.
    assert len(evals) >= 6, evals
    best = min(evals, key=lambda record: record["eval_loss"])
    assert (status["best_eval_loss"], status["best_eval_step"]) == (
        best["eval_loss"],
        best["step"],
    )
    assert best["eval_loss"] < evals[0]["eval_loss"]
    assert (
        f"[vlm-tui] eval loss: best {best['eval_loss']:.4g} at step {best['step']}" in done.stdout
    )
    assert any("  eval " in line for line in done.stdout.splitlines() if " step " in line)
    listed = run_cli(["runs"], tmp_path, environ)
    header, row = listed.stdout.splitlines()[:2]
    assert "BEST EVAL" in header and f"{best['eval_loss']:.4g}" in row.split(), listed.stdout
    compared = run_cli(["runs", "--compare"], tmp_path, environ)
    assert "EVAL LOSS" in compared.stdout and f"{best['eval_loss']:.4g}" in compared.stdout

    # The monitor attached to it draws the evaluations on the chart.
    app = make_app(tmp_path, environ)

    async def scenario() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(lambda: isinstance(app.screen, SetupScreen), pilot)
            screen = MonitorScreen(None, environ, tmp_path, run_folder=RunPaths(run))
            await app.push_screen(screen)
            await wait_for(lambda: screen.view.ended, pilot)
            chart = screen.query_one(LossChart)
            await wait_for(lambda: "eval" in chart.render().plain.split("\n")[0], pilot)
            header = chart.render().plain.split("\n")[0]
            assert f"best {best['eval_loss']:.3g}" in header, header

    asyncio.run(scenario())


def test_an_eval_dataset_of_its_own_is_checked_copied_and_evaluated(
    demo_cache: Path, tmp_path: Path
) -> None:
    data = tmp_path / "held-out"
    lines = [
        json.dumps({"image": f"images/{name}", "text": answer})
        for name, _question, answer in _demo_rows(demo_cache, data)[:8]
    ]
    (data / "eval.jsonl").write_text("\n".join(lines) + "\n")
    work = tmp_path / "work"
    work.mkdir()
    done = run_cli(
        ["--no-ui", "--demo", "--eval_dataset", str(data / "eval.jsonl"), "--eval_steps", "8"],
        work,
        clean_environ({"VLM_TUI_CACHE_DIR": str(demo_cache)}),
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    assert "eval_dataset: 8 rows (caption 8), 8 images" in done.stdout, done.stdout
    run = only_run(work)
    config = (run / "config.yml").read_text()
    assert str(run / "eval-dataset.jsonl") in config
    status = json.loads((run / "status.json").read_text())
    assert [entry["use"] for entry in status["datasets"]] == ["train", "eval"]
    assert isinstance(status["best_eval_loss"], float), status
