"""`vlm-tui try`: what it asks of which weights, read from a run folder alone, and its refusals.

The models themselves answer in tests/e2e/test_try_demo.py (a real demo run); here the run
folders are written by hand and nothing imports torch.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from harness.images import tiny_png
from tests.helpers import clean_environ, refused_command
from vlm_tui.commands.common import find_trained_run
from vlm_tui.core.after.try_request import IMAGE_PROMPT, try_request
from vlm_tui.core.after.trying import Answer, Loaded, answers_alike, ask, one_line
from vlm_tui.core.errors import SetupError, UserError
from vlm_tui.core.records.folder import RunPaths


def _row(index: int, image: str) -> dict[str, object]:
    return {
        "messages": [
            {
                "role": "user",
                "content": [{"type": "image", "path": image}, {"type": "text", "text": "What?"}],
            },
            {"role": "assistant", "content": [{"type": "text", "text": f"Answer {index}."}]},
        ]
    }


def make_run(
    root: Path,
    rows: int = 10,
    *,
    config: dict[str, object] | None = None,
    weights: str = "adapter",
    checkpoints: tuple[int, ...] = (),
) -> RunPaths:
    """A finished run's folder: config.yml, a chat dataset with images, saved weights."""
    data = root / "data"
    (data / "images").mkdir(parents=True)
    (data / "images" / "a.png").write_bytes(tiny_png(1))
    with (data / "rows.jsonl").open("w") as out:
        for index in range(rows):
            # Relative paths are read from the dataset's folder.
            out.write(json.dumps(_row(index, "images/a.png")) + "\n")
    output = root / "outputs" / "model"
    output.mkdir(parents=True)
    marker = {"adapter": "adapter_config.json", "model": "config.json"}.get(weights)
    if marker:
        (output / marker).write_text("{}")
    for step in checkpoints:
        (output / f"checkpoint-{step}").mkdir()
        (output / f"checkpoint-{step}" / "adapter_config.json").write_text("{}")
    run = RunPaths(root / "runs" / "20261202T000000Z-model")
    run.root.mkdir(parents=True)
    settings = {
        "base_model": "/models/base.invalid",
        "chat_template": "llava",
        "datasets": [{"path": str(data / "rows.jsonl"), "type": "chat_template"}],
        "output_dir": str(output),
        **(config or {}),
    }
    run.config.write_text(yaml.safe_dump(settings))
    run.status.write_text(json.dumps({"state": "finished", "exit_code": 0}))
    return run


def test_without_a_split_the_first_rows_are_asked_and_said_to_be_trained_on(
    tmp_path: Path,
) -> None:
    request = try_request(make_run(tmp_path), rows=3)
    assert [item.source for item in request.items] == [
        "training row 1",
        "training row 2",
        "training row 3",
    ]
    first = request.items[0]
    assert first.reference == "Answer 0." and first.prompt == "What?"
    assert first.image == tmp_path / "data" / "images" / "a.png"
    # The conversation stops where the answer starts; the image path is absolute.
    assert [turn["role"] for turn in first.messages] == ["user"]
    assert first.messages[0]["content"][0] == {"type": "image", "path": str(first.image)}
    child = request.child_request()
    assert child["weights"] == str(tmp_path / "outputs" / "model") and child["adapter"] is True
    assert child["chat_template"] == "llava" and len(child["items"]) == 3


def test_the_rows_axolotl_kept_out_are_the_ones_asked(tmp_path: Path) -> None:
    # axolotl 0.19 splits without shuffling: the last ceil(0.25 * 10) = 3 rows are held out.
    request = try_request(make_run(tmp_path, config={"val_set_size": 0.25}), rows=5)
    assert [item.source for item in request.items] == [
        "held-out row 8",
        "held-out row 9",
        "held-out row 10",
    ]
    assert request.items[0].reference == "Answer 7."


def test_a_test_dataset_is_the_held_out_rows(tmp_path: Path) -> None:
    run = make_run(tmp_path, rows=4)
    config = yaml.safe_load(run.config.read_text())
    config["test_datasets"] = [dict(config["datasets"][0])]
    run.config.write_text(yaml.safe_dump(config))
    request = try_request(run, rows=2)
    assert [item.source for item in request.items] == ["held-out row 1", "held-out row 2"]


def test_own_images_and_prompts_come_after_the_rows(tmp_path: Path) -> None:
    image = tmp_path / "mine.png"
    image.write_bytes(tiny_png(2))
    request = try_request(
        make_run(tmp_path),
        rows=1,
        images=[str(image), str(image)],
        prompts=["Colour?", "Why?", "Hi"],
    )
    assert [(item.source, item.prompt, item.reference) for item in request.items] == [
        ("training row 1", "What?", "Answer 0."),
        ("your image 1", "Colour?", None),
        ("your image 2", "Why?", None),
        ("your prompt 3", "Hi", None),
    ]
    alone = try_request(make_run(tmp_path / "b"), rows=0, images=[str(image)])
    assert [item.prompt for item in alone.items] == [IMAGE_PROMPT]


def test_a_checkpoint_or_the_newest_one_when_no_final_weights(tmp_path: Path) -> None:
    run = make_run(tmp_path, checkpoints=(16, 32))
    chosen = try_request(run, rows=1, checkpoint=16)
    assert chosen.step == 16 and chosen.weights.name == "checkpoint-16"
    final = try_request(run, rows=1)
    assert final.step is None and final.weights.name == "model"
    only_checkpoints = make_run(tmp_path / "b", weights="none", checkpoints=(5, 10))
    newest = try_request(only_checkpoints, rows=1)
    assert newest.step == 10 and newest.adapter
    whole = try_request(make_run(tmp_path / "c", weights="model"), rows=1)
    assert whole.adapter is False


@pytest.mark.parametrize(
    ("kwargs", "field", "words"),
    [
        ({"checkpoint": 7}, "checkpoint", "has no checkpoint-7 (checkpoints: 16)"),
        ({"images": ["/nowhere.invalid/x.png"]}, "image", "is not a file"),
        ({"prompts": ["  "]}, "prompt", "must not be empty"),
        ({"rows": -1}, "rows", "must be 0 or more"),
        ({"max_new_tokens": 0}, "max_new_tokens", "from 1 to 4096"),
        ({"rows": 0}, "rows", "nothing to ask"),
    ],
)
def test_what_cannot_be_tried_is_refused_naming_the_field(
    tmp_path: Path, kwargs: dict[str, object], field: str, words: str
) -> None:
    with pytest.raises(UserError) as refused:
        try_request(make_run(tmp_path, checkpoints=(16,)), **kwargs)  # type: ignore[arg-type]
    assert refused.value.field == field and words in refused.value.message


def test_a_run_without_weights_or_config_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="saved no weights yet"):
        try_request(make_run(tmp_path, weights="none"))
    broken = make_run(tmp_path / "b")
    broken.config.write_text("{not yaml")
    with pytest.raises(UserError, match=r"no readable config\.yml"):
        try_request(broken)
    broken.config.write_text("output_dir: /x\n")
    with pytest.raises(UserError, match="names no base_model"):
        try_request(broken)


def test_the_command_refuses_in_one_line_with_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    make_run(tmp_path, checkpoints=(16,))
    monkeypatch.chdir(tmp_path)

    def no_process(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"a process was started: {args!r}")

    monkeypatch.setattr(subprocess, "Popen", no_process)
    for args, words in (
        (["try", "--checkpoint", "3"], "checkpoint: "),
        (["try", "--rows", "x"], "--rows: must be a whole number from 0 to 1000"),
        (["try", "--max-new-tokens", "0"], "from 1 to 4096"),
        (["try", "nothing-like-it"], "RUN: no run matches 'nothing-like-it'"),
    ):
        assert words in refused_command(args, capsys)


def test_a_child_that_cannot_load_is_one_line(tmp_path: Path) -> None:
    # Here the training stack is blocked or the model does not exist: either way one line.
    request = try_request(make_run(tmp_path), rows=1)
    with pytest.raises(SetupError) as failed:
        list(ask(request, clean_environ()))
    message = str(failed.value)
    assert message.startswith("answering failed: ") and "\n" not in message


def test_answers_are_one_printable_line_and_compared_by_their_start() -> None:
    assert one_line("A red\n circle.\x1b[2J\tdone") == "A red circle.\ufffd[2J done"
    assert answers_alike("a  RED circle.  square. square.", "A red circle.")
    assert not answers_alike("A green circle.", "A red circle.")
    assert not answers_alike("anything", "")
    assert Answer(0, "base", "x") != Loaded("cpu", 1.0)


def test_without_a_run_named_the_newest_run_that_saved_weights_is_tried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trained = make_run(tmp_path)
    # A newer dry run beside it saved nothing.
    dry = RunPaths(trained.root.parent / "20261203T000000Z-model-2")
    dry.root.mkdir()
    dry.config.write_text(yaml.safe_dump({"base_model": "x", "output_dir": str(tmp_path / "no")}))
    dry.status.write_text(json.dumps({"state": "dry_run"}))
    monkeypatch.chdir(tmp_path)
    assert find_trained_run(None) == trained
    assert find_trained_run(dry.run_id) == dry  # named: that one, to be refused with its reason
    trained.config.write_text(yaml.safe_dump({"base_model": "x", "output_dir": "/nowhere.invalid"}))
    with pytest.raises(UserError, match="saved weights yet"):
        find_trained_run(None)
