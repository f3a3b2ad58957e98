"""`vlm-tui merge`: where the merged model goes and what is refused, read from a run folder
alone (the merge itself runs on the trained demo in tests/e2e/test_merge_demo.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.helpers import refused_command
from tests.unit.test_try import make_run
from vlm_tui.core.after.merge_request import LOGITS_TOLERANCE, merge_request
from vlm_tui.core.errors import UserError


def test_the_merged_model_goes_beside_the_output_in_a_new_folder(tmp_path: Path) -> None:
    run = make_run(tmp_path, checkpoints=(16,))
    request = merge_request(run)
    output = tmp_path / "outputs" / "model"
    assert request.adapter == output and request.step is None
    assert request.target == tmp_path / "outputs" / "model-merged"
    child = request.child_request()
    assert child["tolerance"] == LOGITS_TOLERANCE and child["chat_template"] == "llava"
    # The logits are compared on the dataset's first row, up to its answer.
    assert child["sample"][0]["content"][0]["path"].endswith("images/a.png")
    step = merge_request(run, checkpoint=16)
    assert step.adapter == output / "checkpoint-16"
    assert step.target == tmp_path / "outputs" / "model-checkpoint-16-merged"
    chosen = merge_request(run, to=str(tmp_path / "elsewhere"))
    assert chosen.target == tmp_path / "elsewhere"


@pytest.mark.parametrize(
    ("to", "words"),
    [
        ("outputs/model-merged", "exists; vlm-tui never writes over a folder"),
        ("nowhere.invalid/sub/x", "is not a folder vlm-tui can write in"),
        ("outputs/model/merged", "must be outside the run's output"),
    ],
)
def test_a_target_that_is_not_new_or_not_apart_is_refused(
    tmp_path: Path, to: str, words: str
) -> None:
    run = make_run(tmp_path)
    (tmp_path / "outputs" / "model-merged").mkdir()
    with pytest.raises(UserError) as refused:
        merge_request(run, to=str(tmp_path / to))
    assert refused.value.field == "to" and words in refused.value.message


def test_a_run_that_trained_every_weight_has_nothing_to_merge(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="already loads alone, there is nothing to merge"):
        merge_request(make_run(tmp_path, weights="model"))


def test_the_command_refuses_in_one_line_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    make_run(tmp_path)
    before = sorted(path.relative_to(tmp_path) for path in tmp_path.rglob("*"))
    monkeypatch.chdir(tmp_path)

    def no_process(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"a process was started: {args!r}")

    monkeypatch.setattr(subprocess, "Popen", no_process)
    for args, words in (
        (["merge", "--checkpoint", "9"], "checkpoint: "),
        (["merge", "--checkpoint", "x"], "--checkpoint: must be a whole number"),
        (["merge", "--to", "outputs/model"], "to: "),
    ):
        assert words in refused_command(args, capsys)
    assert sorted(path.relative_to(tmp_path) for path in tmp_path.rglob("*")) == before
