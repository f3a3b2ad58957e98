"""The Try screen's pieces below the UI: a child that keeps answering (a real process that
speaks the training-stack children's protocol without torch), the weights a run offers with
the loss each was saved at, and how answers are scored against the dataset's."""

from __future__ import annotations

import json
import time
from pathlib import Path

import psutil
import pytest

from tests.helpers import clean_environ
from tests.unit.test_try import make_run
from vlm_tui.core.after.child_lines import ChildSession, child_lines
from vlm_tui.core.after.try_request import SavedWeights, run_config, try_request, weights_choices
from vlm_tui.core.after.trying import BASE, TUNED, agreement
from vlm_tui.core.errors import SetupError

ECHO_CHILD = "tests.fixtures.children.echo_child"


def test_a_session_answers_later_requests_in_order_with_indices_going_on() -> None:
    session = ChildSession(ECHO_CHILD, {"items": ["ab", "cd"]}, clean_environ(), "answering")
    assert session.send({"items": ["ef"]})
    session.finish()
    said = list(session.lines())
    assert said == [
        {"index": 0, "answer": "ba"},
        {"index": 1, "answer": "dc"},
        {"index": 2, "answer": "fe"},
        {"done": True},
    ]
    assert not session.send({"items": ["gh"]})  # gone: said, not raised


def test_one_request_is_read_from_the_first_line_alone() -> None:
    said = list(child_lines(ECHO_CHILD, {"items": ["xy"]}, clean_environ(), "answering"))
    assert said[0] == {"index": 0, "answer": "yx"}


def test_a_child_failing_on_a_later_request_is_one_line_naming_what_failed() -> None:
    session = ChildSession(ECHO_CHILD, {"items": ["ok"]}, clean_environ(), "answering")
    session.send({"fail": "no such image"})
    with pytest.raises(SetupError, match=r"^answering failed: RuntimeError: no such image$"):
        list(session.lines())


def test_closing_a_session_leaves_no_child_behind() -> None:
    session = ChildSession(ECHO_CHILD, {"hang": True}, clean_environ(), "answering")
    pid = session._child.pid
    assert psutil.pid_exists(pid)
    session.kill()
    deadline = time.monotonic() + 10
    while psutil.pid_exists(pid) and time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                break
        except psutil.NoSuchProcess:
            break
        time.sleep(0.05)
    gone = not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert gone
    with pytest.raises(SetupError, match="answering failed"):
        list(session.lines())  # killed: its end is a failure, said in one line


def _trainer_state(folder: Path, losses: list[tuple[int, float]]) -> None:
    history = [{"step": step, "loss": loss, "learning_rate": 1e-4} for step, loss in losses]
    history.append({"step": losses[-1][0], "train_runtime": 3.0})  # the summary has no loss
    (folder / "trainer_state.json").write_text(json.dumps({"log_history": history}))


def test_the_weights_offered_are_the_final_ones_then_each_checkpoint_with_its_loss(
    tmp_path: Path,
) -> None:
    run = make_run(tmp_path, checkpoints=(8, 16))
    output = Path(str(run_config(run)["output_dir"]))
    _trainer_state(output / "checkpoint-8", [(4, 2.5), (8, 1.25)])
    _trainer_state(output / "checkpoint-16", [(4, 2.5), (8, 1.25), (12, 0.75), (16, 0.5)])
    (output / "checkpoint-24").mkdir()  # cut short: no weights in it, not offered
    run.status.write_text(json.dumps({"state": "finished", "final_loss": 0.4375}))
    choices = weights_choices(run, run_config(run))
    assert choices == [
        SavedWeights(None, output, 0.4375),
        SavedWeights(16, output / "checkpoint-16", 0.5),
        SavedWeights(8, output / "checkpoint-8", 1.25),
    ]
    assert [choice.label() for choice in choices] == [
        "final  loss 0.4375",
        "step 16  loss 0.5",
        "step 8  loss 1.25",
    ]


def test_weights_without_a_recorded_loss_are_offered_without_one(tmp_path: Path) -> None:
    run = make_run(tmp_path, weights="none", checkpoints=(3,))
    output = Path(str(run_config(run)["output_dir"]))
    (output / "checkpoint-3" / "trainer_state.json").write_text("{not json")
    assert [choice.label() for choice in weights_choices(run, run_config(run))] == ["step 3"]


def test_agreement_counts_answers_that_begin_with_the_reference(tmp_path: Path) -> None:
    request = try_request(make_run(tmp_path), rows=3, prompts=["Yours?"])
    answers = {
        0: {BASE: "no idea", TUNED: "Answer 0. And more"},
        1: {BASE: "answer 1.", TUNED: "Answer 2."},
        # row 2 not answered yet: counted as not alike
        3: {BASE: "x", TUNED: "y"},  # the user's prompt has no reference: not counted
    }
    found = agreement(request.items, answers)
    assert found is not None
    assert (found.tuned, found.base, found.checked) == (1, 1, 3)
    assert found.line() == (
        "answers that begin with the dataset's answer: fine-tuned 1 of 3, base 1 of 3"
    )
    assert agreement(request.items[3:], answers) is None
