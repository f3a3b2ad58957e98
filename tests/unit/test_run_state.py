"""RunState and the supervisor's recording step: the batch paths give what the one-event paths
give, and metrics.jsonl holds what `metric_record` says, as JSON."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tests.unit.test_output_parser import ALL_FIXTURES, logging_steps_for, parse
from vlm_tui.core.output.output_parser import LogLine, Metrics, OutputParser
from vlm_tui.core.output.run_state import (
    OutputRecorder,
    RunState,
    metric_line,
    metric_record,
    parser_for_run,
)


@pytest.mark.parametrize("path", ALL_FIXTURES, ids=lambda path: path.name)
def test_absorbing_a_feed_gives_what_applying_each_event_gives(path: Path) -> None:
    events = parse(path.read_bytes(), logging_steps=logging_steps_for(path))
    one_by_one, together = RunState(), RunState()
    for event in events:
        one_by_one.apply(event)
    together.absorb(events)
    assert together.status_fields() == one_by_one.status_fields()
    assert together.failure_fields() == one_by_one.failure_fields()
    assert repr(together.losses) == repr(one_by_one.losses)
    assert together.learning_rates == one_by_one.learning_rates


def test_a_failed_run_gets_its_hint_through_absorb() -> None:
    state = RunState()
    state.absorb(parse(ALL_FIXTURES[2].read_bytes()))
    assert state.failure_fields()["hint"] == "child_failed"
    assert state.last_error is not None and "ChildFailedError" in state.last_error


@pytest.mark.parametrize("path", ALL_FIXTURES, ids=lambda path: path.name)
def test_the_recorder_writes_each_record_as_metric_record_says(path: Path, tmp_path: Path) -> None:
    data = path.read_bytes()
    command = {"logging_steps": logging_steps_for(path)}
    state = RunState()
    sink = tmp_path / "metrics.jsonl"
    events = []
    with sink.open("a", encoding="utf-8") as metrics:
        recorder = OutputRecorder(parser_for_run(command), state, metrics)
        for start in range(0, len(data), 4096):
            events += recorder.feed(data[start : start + 4096], 1_700_000_000.5)
        events += recorder.finish(1_700_000_001.0)
    expected = [metric_record(event, 1_700_000_000.5) for event in events]
    written = [json.loads(line) for line in sink.read_text(encoding="utf-8").splitlines()]
    records = [record for record in expected if record is not None]
    assert len(written) == len(records) > 0
    for got, want in zip(written, records, strict=True):
        # finish()'s records carry the later time; everything else is the same.
        assert {**got, "time": 0} == {**json.loads(json.dumps(want)), "time": 0}
    assert state.status_fields()["steps"] == max(
        (record["step"] for record in records if record["kind"] == "train"), default=0
    )


def test_records_turn_values_json_cannot_hold_into_strings() -> None:
    values = {"loss": math.nan, "up": math.inf, "down": -math.inf, "big": 10**400, "ok": 1.5}
    line = metric_line(Metrics(3, values), 12.3456)
    assert line is not None and line.endswith("\n")
    assert json.loads(line) == {
        "kind": "train",
        "time": 12.346,
        "step": 3,
        "loss": "nan",
        "up": "inf",
        "down": "-inf",
        "big": 10**400,
        "ok": 1.5,
    }
    assert metric_line(LogLine("x"), 1.0) is None


def test_a_metric_dict_is_not_scanned_for_failures_but_a_message_is() -> None:
    text = "{'loss': '1.0', 'No space left on device': '1'}"
    (line, metrics) = OutputParser().feed(text.encode() + b"\n")
    assert line == LogLine(text, metrics=True) and isinstance(metrics, Metrics)
    state = RunState()
    state.absorb([line, metrics])
    state.apply(line)
    assert state.failure_fields() == {}
    state.absorb([LogLine("OSError: [Errno 28] No space left on device")])
    assert state.failure_fields()["hint"] == "disk_full"


def _metric_dicts(*steps: tuple[str, str, int]) -> bytes:
    """axolotl's metric dicts as transformers 5 prints them (values quoted, some ints)."""
    return "".join(
        f"{{'loss': '{loss}', 'grad_norm': '{norm}', 'learning_rate': '0.01',"
        f" 'tokens/trainable': {trainable}, 'tokens/total': 156, 'epoch': '0.5'}}\n"
        for loss, norm, trainable in steps
    ).encode()


@pytest.mark.parametrize(
    ("steps", "cause"),
    [
        # All labels masked: axolotl logs 0 trainable tokens, loss 0 and grad_norm 0.
        ([("0", "0", 0), ("0", "0", 0)], "no token carried a label"),
        # Labels there, yet no gradient reached a trainable weight.
        ([("5.9", "0", 89), ("5.9", "0", 89)], "gradient norm was 0"),
        # Ordinary training, one step with nothing to learn: not flagged.
        ([("5.9", "0.76", 89), ("0", "0", 0)], None),
        ([("5.9", "nan", 89), ("5.8", "0", 89)], None),
    ],
    ids=["no-labels", "zero-gradient", "trained", "nan-norm-is-not-zero"],
)
def test_a_run_that_updated_no_weight_is_told_apart(
    steps: list[tuple[str, str, int]], cause: str | None
) -> None:
    state = RunState()
    state.absorb(parse(_metric_dicts(*steps)))
    assert state.step == len(steps)
    found = state.nothing_trained()
    if cause is None:
        assert found is None
    else:
        assert found is not None and cause in found[0], found
        assert found[1], found


def test_a_run_without_steps_is_not_called_untrained() -> None:
    assert RunState().nothing_trained() is None


def test_evaluations_are_kept_with_the_best_and_its_step() -> None:
    lines = (
        _metric_dicts(("5.9", "0.7", 89))
        + b"{'eval_loss': '6.882', 'eval_runtime': '0.22', 'epoch': 0}\n"
        + _metric_dicts(("3.1", "0.7", 89), ("2.5", "0.7", 89))
        + b"{'eval_loss': '2.522', 'eval_runtime': '0.17', 'epoch': '0.33'}\n"
        + _metric_dicts(("2.0", "0.7", 89))
        + b"{'eval_loss': '2.9', 'eval_runtime': '0.17', 'epoch': '0.5'}\n"
    )
    state = RunState()
    state.absorb(parse(lines))
    assert state.eval_losses == [(1, 6.882), (3, 2.522), (4, 2.9)]
    assert state.best_eval == (3, 2.522)
    fields = state.status_fields()
    assert (fields["last_eval_loss"], fields["best_eval_loss"], fields["best_eval_step"]) == (
        2.9,
        2.522,
        3,
    )
    assert "best_eval_loss" not in RunState().status_fields()
