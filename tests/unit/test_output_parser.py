"""Tests for the output parser: real captured output, any chunking, fuzzing, and format tables."""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vlm_tui.core.output import output_parser
from vlm_tui.core.output.output_parser import (
    PARSER_ERROR_PREFIX,
    CheckpointSaved,
    EvalMetrics,
    Event,
    LogLine,
    Metrics,
    ModelSaved,
    OutputParser,
    Progress,
    Summary,
    TracebackEvent,
    TrainingCompleted,
    parse_bar,
    parse_dict,
)

T = TypeVar("T")

FIXTURES = Path(__file__).parent.parent / "fixtures"
# A real `python -m axolotl.cli.train` run of the demo model (axolotl 0.19, transformers 5),
# stdout and stderr merged into one pipe: 32 steps, logging_steps 1, checkpoints at 16 and 32.
REAL_RUN = FIXTURES / "axolotl_demo_run.log"
# Written by hand to the documented formats: logging_steps 2, a lagging bar, nan/inf values,
# an eval with a nested bar, ANSI colours, [RANK:1], dataset bars, a CRLF line.
HANDMADE_TRAINING = FIXTURES / "handmade_training.log"
# Two ranks failing with interleaved [rankN]: tracebacks, then torchrun's ChildFailedError box.
HANDMADE_FAILURE = FIXTURES / "handmade_failure.log"
ALL_FIXTURES = [REAL_RUN, HANDMADE_TRAINING, HANDMADE_FAILURE]


def parse(
    data: bytes, cuts: Iterable[int] = (), logging_steps: int = 1, start_step: int = 0
) -> list[Event]:
    """Feed data split at the given offsets, then finish."""
    parser = OutputParser(logging_steps=logging_steps, start_step=start_step)
    events: list[Event] = []
    start = 0
    for cut in sorted(set(cuts)):
        if start < cut < len(data):
            events.extend(parser.feed(data[start:cut]))
            start = cut
    events.extend(parser.feed(data[start:]))
    events.extend(parser.finish())
    return events


def stable(events: Sequence[Event]) -> list[str]:
    """Events that must not depend on chunking, as text (repr makes nan equal to nan)."""
    return [repr(e) for e in events if not isinstance(e, Progress)]


def of_type(events: Sequence[Event], kind: type[T]) -> list[T]:
    return [e for e in events if isinstance(e, kind)]


def logging_steps_for(path: Path) -> int:
    return 2 if path == HANDMADE_TRAINING else 1


def assert_no_parser_error(events: Sequence[Event]) -> None:
    errors = [e.text for e in of_type(events, LogLine) if e.text.startswith(PARSER_ERROR_PREFIX)]
    assert not errors


# ---------------------------------------------------------------------------------------------
# Real captured output


def test_real_run_metrics_are_steps_1_to_n_in_order() -> None:
    data = REAL_RUN.read_bytes()
    events = parse(data)
    assert_no_parser_error(events)
    metrics = of_type(events, Metrics)
    logged = data.count(b"{'loss': ")
    assert logged == 32
    assert [m.step for m in metrics] == list(range(1, logged + 1))
    for m in metrics:
        loss = m.values["loss"]
        assert isinstance(loss, float) and math.isfinite(loss)
        assert isinstance(m.values["tokens/trainable"], int)
    assert metrics[0].values["loss"] == 6.687
    assert metrics[-1].values["learning_rate"] == 2.408e-05


def test_real_run_summary_progress_and_saves() -> None:
    events = parse(REAL_RUN.read_bytes())
    (summary,) = of_type(events, Summary)
    assert summary.values["train_runtime"] == 1.966
    assert summary.values["epoch"] == 2.0
    trainer_bars = [p for p in of_type(events, Progress) if p.description == ""]
    assert trainer_bars[-1].step == trainer_bars[-1].total == 32
    assert [p.step for p in trainer_bars] == sorted(p.step for p in trainer_bars)
    loading = [p for p in of_type(events, Progress) if p.description == "Loading weights"]
    assert loading[-1].step == loading[-1].total == 64
    assert [(c.path, c.step) for c in of_type(events, CheckpointSaved)] == [
        ("/tmp/axrun/out/checkpoint-16", 16),
        ("/tmp/axrun/out/checkpoint-32", 32),
    ]
    assert of_type(events, TrainingCompleted) == [TrainingCompleted("/tmp/axrun/out")]
    assert of_type(events, ModelSaved) == [ModelSaved("/tmp/axrun/out")]
    assert not of_type(events, TracebackEvent)


def test_real_run_log_lines() -> None:
    data = REAL_RUN.read_bytes()
    lines = of_type(parse(data), LogLine)
    assert all("\r" not in line.text and "\x1b" not in line.text for line in lines)
    texts = [line.text for line in lines]
    # Every physical line is shown once, blank ones aside; redraws are not.
    assert len(lines) <= data.count(b"\n") + 1
    # The final bar is shown once, as the last segment of its line.
    assert sum(t.startswith("100%|") for t in texts) == 1
    # A log line printed right after a bar, without clearing it, is its own LogLine.
    saving = [line for line in lines if "Saving model checkpoint" in line.text]
    assert [line.logger for line in saving] == ["axolotl.core.trainers.base"] * 2
    assert all(line.text.startswith("[2026-") for line in saving)
    warnings = [line for line in lines if line.logger == "py.warnings"]
    assert warnings and all(line.level == "WARNING" for line in warnings)
    assert any(line.level == "INFO" and line.logger == "axolotl.train" for line in lines)


# ---------------------------------------------------------------------------------------------
# Hand-made fixtures


def test_handmade_training() -> None:
    events = parse(HANDMADE_TRAINING.read_bytes(), logging_steps=2)
    assert_no_parser_error(events)
    metrics = of_type(events, Metrics)
    # The step-4 dict is printed while the bar still shows 3: steps follow logging_steps.
    assert [m.step for m in metrics] == [2, 4, 6, 8, 10]
    assert math.isnan(metrics[2].values["loss"])
    assert metrics[2].values["grad_norm"] == math.inf
    assert metrics[2].values["learning_rate"] == 5.866e-06
    (ev,) = of_type(events, EvalMetrics)
    assert ev.step == 6 and ev.values["eval_loss"] == 4.5
    (summary,) = of_type(events, Summary)
    assert summary.values["train_runtime"] == 3733.0
    assert [c.step for c in of_type(events, CheckpointSaved)] == [6, 10]
    progress = of_type(events, Progress)
    assert progress[-1] == Progress(10, 10, 1 / 2.68, 3733.0, 0.0, "")
    assert any(p.description == "Map (num_proc=2)" and p.step == 64 for p in progress)
    unknown = [p for p in progress if p.description == "Dropping Long Sequences"]
    assert unknown[-1].total is None and unknown[-1].step == 64
    lines = of_type(events, LogLine)
    assert all("\x1b" not in line.text and "\r" not in line.text for line in lines)
    ranked = [line for line in lines if line.rank == 1]
    assert [line.logger for line in ranked] == ["axolotl.utils.data.sft"]
    assert lines[0].level == "WARNING" and lines[0].logger == "torchao"
    assert any(line.text.endswith("from the model config.") for line in lines)  # CRLF line


def test_handmade_failure() -> None:
    events = parse(HANDMADE_FAILURE.read_bytes())
    assert_no_parser_error(events)
    tracebacks = of_type(events, TracebackEvent)
    assert [(t.rank, t.error) for t in tracebacks[:2]] == [
        (1, "RuntimeError: Cannot access accelerator device when none is available"),
        (0, "RuntimeError: Cannot access accelerator device when none is available"),
    ]
    # Interleaved ranks are kept apart.
    assert tracebacks[0].lines[0] == "Traceback (most recent call last):"
    assert all(not line.startswith("[rank") for t in tracebacks for line in t.lines)
    assert len(tracebacks[1].lines) == 5
    box = tracebacks[2]
    assert box.rank is None
    assert box.error.startswith(
        "torch.distributed.elastic.multiprocessing.errors.ChildFailedError:"
    )
    assert "axolotl.cli.train FAILED" in box.error
    assert "rank 1 (local_rank: 1)" in box.error and "exitcode 1" in box.error
    assert box.lines[-1].startswith("=====") and len(tracebacks) == 3
    lines = of_type(events, LogLine)
    failed = [line for line in lines if "failed (exitcode: 1)" in line.text]
    assert failed[0].level == "ERROR"
    assert failed[0].logger == "torch/distributed/elastic/multiprocessing/api.py:882"
    assert [line.rank for line in lines if "ProcessGroupGloo" in line.text] == [0]


# ---------------------------------------------------------------------------------------------
# Chunking never changes the result


@pytest.mark.parametrize("path", ALL_FIXTURES, ids=lambda p: p.name)
def test_any_chunking_gives_the_same_events(path: Path) -> None:
    data = path.read_bytes()
    steps = logging_steps_for(path)
    whole = parse(data, logging_steps=steps)
    expected = stable(whole)
    one_byte = parse(data, range(len(data)), logging_steps=steps)
    assert stable(one_byte) == expected
    rng = random.Random(1234)
    for _ in range(20):
        cuts = rng.sample(range(1, len(data)), rng.randint(1, 200))
        chunked = parse(data, cuts, logging_steps=steps)
        assert stable(chunked) == expected
        assert of_type(chunked, Progress)[-1:] == of_type(whole, Progress)[-1:]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cuts=st.lists(st.integers(min_value=1, max_value=6000), max_size=40))
def test_random_chunking_of_handmade_training(cuts: list[int]) -> None:
    data = HANDMADE_TRAINING.read_bytes()
    assert stable(parse(data, cuts, logging_steps=2)) == stable(parse(data, logging_steps=2))


def test_collapse_within_one_feed_and_live_progress() -> None:
    redraws = b"".join(
        b"\r%3d%%|          | %d/100 [00:00<00:01, 99.00it/s]" % (n, n) for n in range(101)
    )
    parser = OutputParser()
    first = parser.feed(redraws)
    # The flood collapses to one event, and the pending last bar is reported at once.
    assert of_type(first, Progress) == [Progress(100, 100, 99.0, 0.0, 1.0, "")]
    assert parser.feed(b"\n") == [
        LogLine("100%|          | 100/100 [00:00<00:01, 99.00it/s]", None, None, None)
    ]


def test_live_bar_is_reported_once() -> None:
    parser = OutputParser()
    events = parser.feed(b"\r  5%|\xe2\x96\x8c         | 1/20 [00:00<00:00, 24.53it/s]")
    assert events == [Progress(1, 20, 24.53, 0.0, 0.0, "")]
    assert parser.feed(b"  ") == []  # tqdm pads a shorter redraw with spaces
    assert parser.feed(b"\r") == []
    assert (
        of_type(
            parser.feed(b" 10%|\xe2\x96\x88         | 2/20 [00:00<00:00, 24.53it/s]"), Progress
        )[0].step
        == 2
    )


def test_each_bar_is_its_own_progress_in_one_feed() -> None:
    data = (
        b"\r 50%|     | 1/2 [00:00<00:00, 9.00it/s]\rMap: 50%|     | 5/10 [00:00<00:00, 9.00it/s]\r"
    )
    progress = of_type(OutputParser().feed(data), Progress)
    assert [(p.description, p.step) for p in progress] == [("", 1), ("Map", 5)]


# ---------------------------------------------------------------------------------------------
# The fast paths for redraws change no event


def _state(step: int, total: int = 20, desc: str = "", tail: str = "") -> str:
    """A tqdm bar at `step`; states of one bar share a form unless the digit count changes."""
    prefix = f"{desc}: " if desc else ""
    return f"\r{prefix}{50:3d}%|#####     | {step}/{total} [00:0{step % 10}<00:01, 5.00it/s]{tail}"


def parse_slowly(data: bytes, cuts: Iterable[int] = (), logging_steps: int = 1) -> list[Event]:
    """`parse` with every segment read by the regexes: no redraw skipped, no bar read by form."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(output_parser.BarForm, "redraw", lambda self, bar_text: None)
        patch.setattr(output_parser.BarForm, "progress", lambda self, text: None)
        return parse(data, cuts, logging_steps=logging_steps)


REDRAW_CASES = {
    "a flood, a clear and a dict": "".join(_state(n) for n in range(1, 10))
    + "\r"
    + " " * 40
    + "\r{'loss': '1.5', 'epoch': '0.1'}\n",
    # Same form, other total: another bar, whose redraws do not collapse into this one's.
    "two totals": _state(1) + _state(1, 21) + _state(2) + _state(2, 21) + _state(3) + "\n",
    # Same form, descriptions that differ in a digit only.
    "two described bars": _state(1, desc="Map 1")
    + _state(1, desc="Map 2")
    + _state(2, desc="Map 1")
    + "\n",
    "text between redraws": _state(1) + "\rsome text" + _state(2) + _state(3) + "\n",
    "escapes and padding": _state(1, tail="  ")
    + "\r\x1b[33m"
    + _state(2)[1:]
    + _state(3, tail="\x1b[A")
    + _state(4)
    + _state(5, tail="[2026-11-24 11:14:02,823] [INFO] [axolotl.train] after the bar")
    + "\n",
    "digit count changes": "".join(_state(n, 1000) for n in (8, 9, 10, 11, 99, 100)) + "\n",
    "a line cut by a newline inside": _state(1) + _state(2) + "\n" + _state(3) + _state(4),
}


@pytest.mark.parametrize("data", REDRAW_CASES.values(), ids=list(REDRAW_CASES))
def test_redraw_fast_paths_give_the_slow_paths_events(data: str) -> None:
    raw = data.encode()
    for cuts in ([], [7], list(range(0, len(raw), 50))):
        assert repr(parse(raw, cuts)) == repr(parse_slowly(raw, cuts))


def test_redraws_replaced_in_the_same_feed_collapse_to_the_last() -> None:
    events = parse(REDRAW_CASES["a flood, a clear and a dict"].encode())
    progress, dict_line, metrics = events
    assert isinstance(progress, Progress) and (progress.step, progress.total) == (9, 20)
    assert dict_line == LogLine("{'loss': '1.5', 'epoch': '0.1'}", metrics=True)
    assert metrics == Metrics(9, {"loss": 1.5, "epoch": 0.1})
    totals = of_type(parse(REDRAW_CASES["two totals"].encode()), Progress)
    assert [(p.step, p.total) for p in totals] == [(1, 20), (1, 21), (2, 20), (2, 21), (3, 20)]


def test_a_redraw_of_the_bar_reported_live_is_not_reported_twice() -> None:
    parser = OutputParser()
    assert of_type(parser.feed(_state(1).encode()), Progress)[0].step == 1
    # The live bar completes, then two more states of it arrive in the same feed.
    events = parser.feed((_state(2) + _state(3) + "\n").encode())
    assert [type(e).__name__ for e in events] == ["Progress", "LogLine"]
    assert of_type(events, Progress)[0].step == 3


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    parts=st.lists(
        st.one_of(
            st.builds(
                _state,
                st.integers(0, 120),
                st.sampled_from([20, 21, 99, 100]),
                st.sampled_from(["", "", "Map 1", "Map 2", "a: b"]),
                st.sampled_from(["", "", "  ", "\x1b[A", "x"]),
            ),
            st.sampled_from(["\r", "\n", "\r ", "\r{'loss': '2'}\n", "\rtext", "\x1b[33m"]),
        ),
        max_size=40,
    ),
    cuts=st.lists(st.integers(0, 3000), max_size=4),
)
def test_redraw_fast_paths_give_the_slow_paths_events_on_any_mix(
    parts: list[str], cuts: list[int]
) -> None:
    data = "".join(parts).encode()
    assert repr(parse(data, cuts)) == repr(parse_slowly(data, cuts))


def test_log_line_fields_are_read_on_first_use() -> None:
    text = "[rank2]: [2026-11-24 11:14:02,823] [ERROR] [axolotl.x] [RANK:3] m"
    line = LogLine.of_text(text)
    assert (line.level, line.logger, line.rank) == output_parser.classify_line(text)
    assert (line.level, line.logger, line.rank) == ("ERROR", "axolotl.x", 3)
    assert line == LogLine(text, "ERROR", "axolotl.x", 3)
    assert line != LogLine(text, "ERROR", "axolotl.x", 3, metrics=True)
    assert hash(line) == hash(LogLine(text, "ERROR", "axolotl.x", 3))
    assert repr(LogLine("x")) == "LogLine(text='x', level=None, logger=None, rank=None)"


def test_progress_times_are_read_on_first_use() -> None:
    parsed = parse_bar(" 10%|█         | 2/20 [00:05<00:45,  2.50s/it]")
    assert parsed is not None
    progress = parsed[0]
    assert progress == Progress(2, 20, 0.4, 5.0, 45.0, "")
    assert hash(progress) == hash(Progress(2, 20, 0.4, 5.0, 45.0, ""))
    assert repr(progress) == (
        "Progress(step=2, total=20, steps_per_second=0.4, elapsed_s=5.0, remaining_s=45.0, "
        "description='')"
    )
    assert progress != LogLine("x")


# ---------------------------------------------------------------------------------------------
# Never raises: fuzzing

FRAGMENTS = [
    "\r",
    "\n",
    "\r\n",
    "{'loss': ",
    "'5.947', ",
    "'nan'",
    "'eval_loss': '1', ",
    "'train_runtime': '0.2', ",
    "}",
    "{",
    "Traceback (most recent call last):\n",
    '  File "x.py", line 1, in <module>\n',
    "During handling of the above exception, another exception occurred:\n",
    "ValueError: bad\n",
    "KeyboardInterrupt\n",
    "torch.distributed.elastic.multiprocessing.errors.ChildFailedError: \n",
    "=" * 60 + "\n",
    "Root Cause (first observed failure):\n",
    "  rank      : 1 (local_rank: 1)\n",
    "  exitcode  : -9 (pid: 12) (SIGKILL)\n",
    "[rank1]: ",
    "[rank0]:",
    "\x1b[33m",
    "\x1b[39m",
    "\x1b[A",
    "\x1b",
    "  5%|▌         | 1/20 [00:00<00:00, 24.53it/s]",
    "100%|██████████| 20/20 [1:02:03<00:00,  2.50s/it]",
    "12it [00:01, 9.50it/s]",
    "Map: ",
    "[2026-11-24 11:14:02,823] [INFO] [axolotl.train] ",
    " [RANK:1] ",
    "W1124 11:20:05.000000 5000 api.py:908] ",
    "Saving model checkpoint to /x/checkpoint-12",
    "Model successfully saved to /x",
    "Training completed! Saving trained model to /x.",
    "\x00",
    "\t",
    " " * 40,
    "é",
    "▌",
]

fragment_text = st.lists(
    st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=8)), max_size=30
).map("".join)


def _check_never_raises(data: bytes, cuts: list[int]) -> list[Event]:
    events = parse(data, cuts)
    assert_no_parser_error(events)
    return events


@settings(max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=64), cuts=st.lists(st.integers(0, 64), max_size=4))
def test_arbitrary_bytes_never_raise(data: bytes, cuts: list[int]) -> None:
    _check_never_raises(data, cuts)


@settings(max_examples=3_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=fragment_text, cuts=st.lists(st.integers(0, 400), max_size=6))
def test_fragments_never_raise_and_chunking_does_not_matter(text: str, cuts: list[int]) -> None:
    data = text.encode("utf-8", errors="surrogatepass")
    events = _check_never_raises(data, cuts)
    assert stable(events) == stable(parse(data))
    for event in events:
        if isinstance(event, LogLine):
            assert "\r" not in event.text and "\n" not in event.text and "\x1b" not in event.text


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=300))
def test_one_byte_feeds_match_one_feed_on_arbitrary_bytes(data: bytes) -> None:
    assert stable(parse(data, range(len(data)))) == stable(parse(data))


def test_split_multibyte_char_and_invalid_bytes() -> None:
    parser = OutputParser()
    assert parser.feed("caf\u00e9 \u258c".encode()[:-1]) == []
    (line,) = parser.feed("caf\u00e9 \u258c".encode()[-1:] + b"\n")
    assert line == LogLine("café ▌", None, None, None)
    events = parse(b"a\xff\xfeb\x00c\n\xe2\x96")
    assert [e.text for e in of_type(events, LogLine)] == ["a\ufffd\ufffdbc", "\ufffd"]


def test_feed_after_finish_and_str_input_do_not_raise() -> None:
    parser = OutputParser()
    parser.finish()
    assert parser.feed(b"x\n") == [LogLine("x", None, None, None)]
    assert parser.feed("y\n") == [LogLine("y", None, None, None)]  # type: ignore[arg-type]
    assert parser.finish() == []


def test_long_line_is_capped_the_same_in_any_chunking(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(output_parser, "MAX_LINE_CHARS", 100)
    data = b"x" * 250 + b"\nshort\n" + b"y" * 100 + b"\r" + b"z" * 30
    whole = parse(data)
    assert [len(e.text) for e in of_type(whole, LogLine)] == [100, 100, 50, 5, 30]
    for cuts in (range(len(data)), [7, 150, 301], [99, 100, 101, 200]):
        assert stable(parse(data, cuts)) == stable(whole)


def test_pending_partial_line_is_flushed_by_finish() -> None:
    parser = OutputParser()
    assert parser.feed(b"[2026-11-24 11:14:02,823] [ERROR] [axolotl.x] no newline") == []
    assert parser.finish() == [
        LogLine(
            "[2026-11-24 11:14:02,823] [ERROR] [axolotl.x] no newline", "ERROR", "axolotl.x", None
        )
    ]


# ---------------------------------------------------------------------------------------------
# Format tables

BAR_TABLE = [
    # text, step, total, rate, elapsed, remaining, description
    ("  5%|▌         | 1/20 [00:00<00:00, 24.53it/s]", 1, 20, 24.53, 0.0, 0.0, ""),
    (" 10%|█         | 2/20 [00:05<00:45,  2.50s/it]", 2, 20, 0.4, 5.0, 45.0, ""),
    ("  0%|          | 0/20 [00:00<?, ?it/s]", 0, 20, None, 0.0, None, ""),
    ("100%|██████████| 20/20 [1:02:03<00:00, 80.55it/s]", 20, 20, 80.55, 3723.0, 0.0, ""),
    (" 50%|█████     | 10/20 [12:01:02<2:00:00, 80.55it/s]", 10, 20, 80.55, 43262.0, 7200.0, ""),
    ("Map: 100%|██████████| 64/64 [00:00<00:00, 1234.56 examples/s]", 64, 64, 1234.56, 0, 0, "Map"),
    (
        "Map (num_proc=2):  50%|█| 32/64 [00:01<00:01, 2.1k examples/s]",
        32,
        64,
        2100.0,
        1,
        1,
        "Map (num_proc=2)",
    ),
    ("12it [00:01, 9.50it/s]", 12, None, 9.5, 1.0, None, ""),
    ("Dropping: 64 examples [00:02, 31.20 examples/s]", 64, None, 31.2, 2.0, None, "Dropping"),
    ("12it [00:01, ?it/s]", 12, None, None, 1.0, None, ""),
    ("  5%|▌         | 1/20 [00:00<00:00]", 1, 20, None, 0.0, 0.0, ""),
    ("  5% 1/20 [00:00<00:00, 24.53it/s]", 1, 20, 24.53, 0.0, 0.0, ""),
    (" 50%|#####     | 1.50k/3.00k [00:01<00:01, 1.23kit/s]", 1500, 3000, 1230.0, 1, 1, ""),
    (
        " 50%|#####     | 5/10 [2 days, 1:00:00<1:00:00, 4.00s/it, loss=1.2]",
        5,
        10,
        0.25,
        176400,
        3600,
        "",
    ),
]


@pytest.mark.parametrize(
    ("text", "step", "total", "rate", "elapsed", "remaining", "desc"), BAR_TABLE
)
def test_progress_parsing(
    text: str,
    step: int,
    total: int | None,
    rate: float | None,
    elapsed: float,
    remaining: float | None,
    desc: str,
) -> None:
    parsed = parse_bar(text)
    assert parsed is not None
    progress, end = parsed
    assert end == len(text)
    assert (progress.step, progress.total, progress.description) == (step, total, desc)
    assert progress.steps_per_second == (pytest.approx(rate) if rate is not None else None)
    assert (progress.elapsed_s, progress.remaining_s) == (elapsed, remaining)


@pytest.mark.parametrize(
    "text",
    [
        "[2026-11-24 11:14:02,823] [INFO] [axolotl.train] Starting trainer...",
        "{'loss': '5.947', 'tokens/train_per_sec_per_gpu': '3290'}",
        "trainable params: 34,816 || all params: 194,880 || trainable%: 17.8654",
        '  File "/venv/lib/python3.11/site-packages/x.py", line 3, in f',
        "speed 5%|fast [fast]",
    ],
)
def test_not_a_bar(text: str) -> None:
    assert parse_bar(text) is None


DICT_TABLE: list[tuple[str, dict[str, float | int]]] = [
    ("{'loss': '5.947'}", {"loss": 5.947}),
    (
        "{'loss': 'nan', 'grad_norm': 'inf', 'x': '-inf'}",
        {"loss": math.nan, "grad_norm": math.inf, "x": -math.inf},
    ),
    ("{'learning_rate': '5.866e-06'}", {"learning_rate": 5.866e-06}),
    (
        "{'tokens/trainable': 89, 'tokens/total': 156, 'neg': -3}",
        {"tokens/trainable": 89, "tokens/total": 156, "neg": -3},
    ),
    (
        "{'memory/max_active (GiB)': '0', 'epoch': '2'}",
        {"memory/max_active (GiB)": 0.0, "epoch": 2.0},
    ),
    (
        "{'loss': 5.947, 'nan_raw': nan, 'e': 1e-05}",
        {"loss": 5.947, "nan_raw": math.nan, "e": 1e-05},
    ),
    ("{'name': 'adamw', 'flag': True, 'none': None, 'loss': '1'}", {"loss": 1.0}),
    ("{'msg': '[String too long to display, length: 200 > 100.]', 'loss': '2'}", {"loss": 2.0}),
    ("{'list': [1, 2], 'loss': '3', 'sup': '²'}", {"loss": 3.0}),
    ('{"double": "4.5"}', {"double": 4.5}),
]


@pytest.mark.parametrize(("text", "expected"), DICT_TABLE)
def test_dict_value_conversion(text: str, expected: dict[str, float | int]) -> None:
    _keys, values = parse_dict(text)
    assert repr(values) == repr(expected)
    assert [type(v) for v in values.values()] == [type(v) for v in expected.values()]


def _bar(step: int, total: int = 100, desc: str = "") -> bytes:
    prefix = f"{desc}: " if desc else ""
    percent = 100 * step // total
    return f"\r{prefix}{percent:3d}%|     | {step}/{total} [00:01<00:01, 5.00it/s]".encode()


def _loss(value: str = "1.0") -> bytes:
    return b"\r" + b" " * 40 + b"\r{'loss': '" + value.encode() + b"', 'epoch': '0.1'}\n"


def _steps(data: bytes, logging_steps: int = 1, start_step: int = 0) -> list[int]:
    events = parse(data, logging_steps=logging_steps, start_step=start_step)
    return [e.step for e in of_type(events, Metrics)]


def test_steps_follow_logging_steps_when_bars_lag() -> None:
    # No redraw at all between dicts (tqdm throttled): steps still advance.
    assert _steps(_bar(1) + _loss() + _loss() + _loss()) == [1, 2, 3]
    # The bar lags one step behind each dict.
    assert _steps(_bar(0) + _loss() + _bar(1) + _loss() + _bar(2) + _loss()) == [1, 2, 3]


def test_steps_catch_up_with_a_bar_that_is_ahead() -> None:
    # Dicts were lost (or logging_steps is wrong): the bar is a lower bound.
    assert _steps(_bar(1) + _loss() + _bar(7) + _loss() + _loss()) == [1, 7, 8]


def test_logging_steps_5_and_start_step() -> None:
    assert _steps(_bar(3) + _loss() + _bar(9) + _loss(), logging_steps=5) == [5, 10]
    # Resumed from checkpoint-10: the bar starts at 0 then jumps to the true step.
    data = _bar(0) + _bar(12) + _loss() + _bar(14) + _loss()
    assert _steps(data, logging_steps=5, start_step=10) == [15, 20]
    assert _steps(_loss(), start_step=10) == [11]


def test_only_the_trainer_bar_sets_steps() -> None:
    # Dataset bars have a description; the eval bar has another total.
    data = _bar(90, desc="Map") + _bar(1) + _bar(50, total=60) + _loss() + _loss()
    assert _steps(data) == [1, 2]


def test_trainer_total_tells_the_eval_bar_apart() -> None:
    parser = OutputParser(logging_steps=2)
    events = parser.feed(HANDMADE_TRAINING.read_bytes())
    assert parser.trainer_total == 10
    eval_bars = [p for p in of_type(events, Progress) if p.total != parser.trainer_total]
    assert {(p.description, p.total) for p in eval_bars} >= {("", 4)}


def test_eval_and_summary_do_not_advance_the_step() -> None:
    data = (
        _bar(2)
        + _loss()
        + b"{'eval_loss': '2.5', 'eval_runtime': '0.1', 'epoch': '0.2'}\n"
        + b"{'train_runtime': '1.0', 'train_loss': '1.5', 'epoch': '0.2'}\n"
        + _loss()
        + b"{'grad_norm': '1.0'}\n"
    )
    events = parse(data)
    assert [
        (type(e).__name__, getattr(e, "step", None))
        for e in events
        if not isinstance(e, (LogLine, Progress))
    ] == [
        ("Metrics", 2),
        ("EvalMetrics", 2),
        ("Summary", None),
        ("Metrics", 3),
    ]


# ---------------------------------------------------------------------------------------------
# Log lines, saves, tracebacks


@pytest.mark.parametrize(
    ("text", "level", "logger", "rank"),
    [
        ("[2026-11-24 11:14:02,823] [INFO] [axolotl.train] msg", "INFO", "axolotl.train", None),
        ("[2026-11-24 11:14:02,823] [WARNING] [axolotl.x] [RANK:3] msg", "WARNING", "axolotl.x", 3),
        (
            "[2026-11-24 11:14:02,823] [DEBUG] [axolotl.x.f:12] [PID:99] [RANK:1] m",
            "DEBUG",
            "axolotl.x.f:12",
            1,
        ),
        ("[rank2]: [2026-11-24 11:14:02,823] [ERROR] [axolotl.x] m", "ERROR", "axolotl.x", 2),
        (
            "[rank0]:[W1124 11:20:04.512000 5002 socket.cpp:764] [c10d] m",
            "WARNING",
            "socket.cpp:764",
            0,
        ),
        (
            "E1124 11:20:05.100000 5000 api.py:882] failed (exitcode: 1)",
            "ERROR",
            "api.py:882",
            None,
        ),
        ("WARNING:root:something", "WARNING", "root", None),
        ("/x/y.py:12: FutureWarning: deprecated", "WARNING", None, None),
        ("[transformers] The tokenizer has new PAD/BOS/EOS tokens", None, None, None),
        ("plain text", None, None, None),
    ],
)
def test_log_line_fields(
    text: str, level: str | None, logger: str | None, rank: int | None
) -> None:
    (line,) = of_type(parse(text.encode() + b"\n"), LogLine)
    assert line == LogLine(text, level, logger, rank)


def test_ansi_codes_are_stripped() -> None:
    data = (
        b"\x1b[33m[2026-11-24 11:14:02,823] [WARNING] [axolotl.x] hi\x1b[39m\n"
        b"\x1b]0;title\x07ok\x1b[1;31m!\n"
    )
    lines = of_type(parse(data), LogLine)
    assert [(line.text, line.level) for line in lines] == [
        ("[2026-11-24 11:14:02,823] [WARNING] [axolotl.x] hi", "WARNING"),
        ("ok!", None),
    ]


def test_save_lines() -> None:
    data = (
        b"Saving model checkpoint to /o/checkpoint-12\n"
        b"[2026-11-24 11:14:02,823] [INFO] [transformers.trainer] Saving model checkpoint to /o\n"
        b"[2026-11-24 11:14:02,823] [INFO] [axolotl.train] "
        b"Training completed! Saving trained model to /o.\n"
        b"[2026-11-24 11:14:02,823] [INFO] [axolotl.train] Model successfully saved to /o\n"
    )
    events = [e for e in parse(data) if not isinstance(e, LogLine)]
    assert events == [
        CheckpointSaved("/o/checkpoint-12", 12),
        CheckpointSaved("/o", None),
        TrainingCompleted("/o"),
        ModelSaved("/o"),
    ]


CHAINED = b"""Traceback (most recent call last):
  File "a.py", line 1, in <module>
KeyError: 'x'

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "a.py", line 3, in <module>
ValueError: bad value
next line
"""


def test_chained_traceback_last_event_has_the_whole_chain() -> None:
    tracebacks = of_type(parse(CHAINED), TracebackEvent)
    assert [t.error for t in tracebacks] == ["KeyError: 'x'", "ValueError: bad value"]
    assert len(tracebacks[-1].lines) == 7
    assert tracebacks[-1].lines[3].startswith("During handling")


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (
            b'Traceback (most recent call last):\n  File "a.py", line 1\nKeyboardInterrupt\n',
            "KeyboardInterrupt",
        ),
        (
            b'Traceback (most recent call last):\n  File "a", line 1\n'
            b"[2026-11-24 11:14:02,823] [INFO] [axolotl.x] interleaved\nwandb: note\n"
            b"torch.OutOfMemoryError: CUDA out of memory.\n",
            "torch.OutOfMemoryError: CUDA out of memory.",
        ),
        # Cut off by the end of the stream: the last line stands in for the error.
        (b'Traceback (most recent call last):\n  File "a.py", line 1, in f\n    g()', "g()"),
        # A message ending with ':' that is not torchrun's box.
        (
            b'Traceback (most recent call last):\n  File "a"\nValueError: expected one of:\nfoo\n',
            "ValueError: expected one of:",
        ),
    ],
)
def test_traceback_endings(data: bytes, error: str) -> None:
    (tb,) = of_type(parse(data), TracebackEvent)
    assert tb.error == error
    assert tb.lines[0] == "Traceback (most recent call last):"


def test_traceback_lines_are_capped() -> None:
    body = b"".join(b'  File "f.py", line %d, in f\n' % i for i in range(5000))
    (tb,) = of_type(
        parse(b"Traceback (most recent call last):\n" + body + b"RecursionError: deep\n"),
        TracebackEvent,
    )
    assert len(tb.lines) == output_parser.MAX_TRACEBACK_LINES
    assert tb.lines[-1] == "RecursionError: deep"


def test_signal_in_child_failed_box() -> None:
    data = HANDMADE_FAILURE.read_bytes().replace(
        b"exitcode  : 1 (pid: 5003)", b"exitcode  : -9 (pid: 5003) (SIGKILL)"
    )
    box = of_type(parse(data), TracebackEvent)[-1]
    assert "exitcode -9 (SIGKILL)" in box.error


# ---------------------------------------------------------------------------------------------
# Hostile input: huge numbers, quadratic traps, endless ranks

HOSTILE_LINES = [
    b"{" + b", '" * 20000 + b"}",
    b"{" + b"'a': '" * 10000 + b"}",
    b"{'loss': '" + b"9" * 5000 + b"', 'n': " + b"9" * 5000 + b"}",
    b"a: " * 100000 + b"5%| 1/2 [00:00<00:00, 1it/s]",
    b" 50%|##| " + b"9" * 900 + b"/" + b"9" * 900 + b" [00:00<00:00, 1it/s]",
    b"12" + b"9" * 400 + b"it [" + b"9" * 400 + b":00, 1it/s]",
    b"\x1b]" * 100000,
    b"x:1: " * 50000 + b"Warning: ",
    b"[rank" + b"9" * 5000 + b"]: Traceback (most recent call last):",
    b"[2026-11-24 11:14:02,823] [INFO] [a] [RANK:" + b"9" * 5000 + b"] m",
    b"Saving model checkpoint to /x/checkpoint-" + b"9" * 5000,
    b"Traceback (most recent call last):\n" + b"A" * 300000,
    b"\r 5%|" * 100000,
    b"1 [" * 100000 + b"/s",
]


def test_hostile_lines_are_cheap_and_never_raise() -> None:
    import time

    for line in HOSTILE_LINES:
        started = time.perf_counter()
        events = parse(line + b"\n" + line)
        assert time.perf_counter() - started < 2.0, line[:40]
        assert_no_parser_error(events)


def test_many_ranks_do_not_grow_without_bound() -> None:
    parser = OutputParser()
    for rank in range(2000):
        parser.feed(b"[rank%d]: Traceback (most recent call last):\n" % rank)
    tracebacks = of_type(parser.finish(), TracebackEvent)
    assert len(tracebacks) == 256
    assert tracebacks[-1].rank == 1999


# ---------------------------------------------------------------------------------------------
# The run's whole pipeline under fuzzing: parser -> RunState -> metrics.jsonl and status.json

# Realistic fragments (metric dicts with hostile values, tqdm bars, log prefixes, save lines,
# tracebacks, long lines) come from a seeded random.Random: hypothesis draws the seed, the piece
# count, the cut points and some raw unicode and invalid UTF-8, so its time goes to feeding the
# parser rather than to building strings draw by draw.
_POOL_VALUES = [
    "nan",
    "inf",
    "-inf",
    "'nan'",
    "'inf'",
    "'-inf'",
    "1e308",
    "1e309",
    "-1e309",
    "'1e999'",
    "-5",
    "-0.0",
    "0",
    "True",
    "None",
    "'x'",
    "''",
    "'",
    "1.2.3",
    "9" * 70,
    "'" + "9" * 63 + "'",
    "9" * 64,
    "1e-400",
    "+3",
    "0x10",
    "1_000",
    "\u0663",
    "[1, 2]",
    "{'a': 1}",
    "tensor(2.5)",
    str(-(10**40)),
    str(10**40),
]
_POOL_KEYS = [
    "loss",
    "grad_norm",
    "learning_rate",
    "epoch",
    "eval_loss",
    "train_runtime",
    "train_loss",
    "tokens/train_per_sec_per_gpu",
    "memory/max_active (GiB)",
    "",
    "\u00e9",
]
_POOL_COUNTS = ["0", "1", "7", "20", "1000", "9" * 20, "1.5k", "2M", "1.00Y", "4294967296"]
_POOL_TIMES = ["00:00", "01:02", "1:02:03", "2 days, 1:02:03", "-0:01", "?", "999999999:00"]
_POOL_RATES = ["24.53it/s", " 2.50s/it", "?it/s", "0.00s/it", "1.2kit/s", "inf it/s", ""]
_POOL_STARTS = [
    "",
    "[2026-11-24 11:14:02,823] [INFO] [axolotl.train] [RANK:0] ",
    "[2026-11-24 11:14:02,823] [ERROR] [axolotl.cli] [PID:12] [RANK:999999999] ",
    "[rank0]: ",
    "[rank3]:",
    "W1124 11:20:05.000000 5000 api.py:908] ",
    "ERROR:root:",
    "x.py:12: UserWarning: ",
    "\x1b[33m",
]
_POOL_LINES = [
    "Saving model checkpoint to /out/checkpoint-" + "9" * 30,
    "Saving model checkpoint to \u202e/x/checkpoint-3\n",
    "Model successfully saved to \x00\n",
    "ChildFailedError:\n" + "=" * 40 + "\n",
    "  rank      : 99999999999999999999 (local_rank: x)\n",
    "  exitcode  : -999 (pid: 1)\n",
    "RuntimeError: NCCL error: unhandled system error\n",
    "torch.distributed.DistNetworkError: The client socket has timed out\n",
    "OSError: [Errno 98] Address already in use\n",
    *("x" * n for n in (1023, 1024, 1025, 4095, 4097, 2500)),
    *("{'loss': " + "1" * n + "}" for n in (64, 65, 1500)),
]


def _fuzz_piece(rng: random.Random) -> str:
    """One realistic fragment of a training's output, often with a hostile value in it."""

    def value() -> str:
        roll = rng.random()
        if roll < 0.5:
            return rng.choice(_POOL_VALUES)
        number = rng.choice([rng.uniform(-10, 10), 10 ** rng.uniform(-320, 308), -0.0])
        return repr(number) if roll < 0.75 else f"'{number:.4g}'"

    def metric_dict() -> str:
        pairs = [(rng.choice(_POOL_KEYS), value()) for _ in range(rng.randint(0, 6))]
        return "{" + ", ".join(f"'{key}': {val}" for key, val in pairs) + "}"

    def bar() -> str:
        desc = rng.choice(["", "", "Map: ", "Map (num_proc=2): ", "\u00e9: "])
        n, total = rng.choice(_POOL_COUNTS), rng.choice(_POOL_COUNTS)
        elapsed, remaining = rng.choice(_POOL_TIMES), rng.choice(_POOL_TIMES)
        rate = rng.choice(_POOL_RATES)
        if rng.random() < 0.2:
            return f"\r{n}it [{elapsed}, {rate}]"
        pct = rng.randint(0, 100)
        return (
            f"\r{desc}{pct:3d}%|\u2588\u258c        | {n}/{total} [{elapsed}<{remaining}, {rate}]"
        )

    roll = rng.random()
    if roll < 0.3:
        return metric_dict()
    if roll < 0.5:
        return bar()
    if roll < 0.7:
        return rng.choice(_POOL_STARTS) + (metric_dict() if rng.random() < 0.5 else value())
    if roll < 0.8:
        return rng.choice(_POOL_LINES)
    return rng.choice(FRAGMENTS)


_FUZZ_SEPARATORS = [b"\n", b"\r", b"\r\n", b"", b"", b"\n\n"]


def _fuzz_stream(seed: int, count: int, raw: list[bytes]) -> bytes:
    """`count` realistic pieces from the seed, with the raw pieces put in at random places."""
    rng = random.Random(seed)
    pieces = [_fuzz_piece(rng).encode("utf-8", errors="surrogatepass") for _ in range(count)]
    for item in raw:
        pieces.insert(rng.randint(0, len(pieces)), item)
    return b"".join(piece + rng.choice(_FUZZ_SEPARATORS) for piece in pieces)


# Drawn by hypothesis, so it can shrink them: text with any unicode, and bytes that are not UTF-8.
_FUZZ_RAW = st.lists(
    st.one_of(
        st.text(max_size=12).map(lambda text: text.encode("utf-8", errors="surrogatepass")),
        st.binary(max_size=8),
        st.sampled_from([b"\xff", b"\xe2\x96", b"\xed\xa0\x80", b"\xc0\xaf", b"\x00", b"\xf4\x90"]),
    ),
    max_size=4,
)


@settings(
    max_examples=10_000,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    seed=st.integers(0, 2**32 - 1),
    count=st.integers(0, 24),
    raw=_FUZZ_RAW,
    cut_points=st.lists(st.floats(0, 1), max_size=8),
    logging_steps=st.integers(1, 10),
    start_step=st.integers(0, 10**6),
    small_line_cap=st.booleans(),
)
def test_the_run_pipeline_never_raises_on_fuzzed_output(
    seed: int,
    count: int,
    raw: list[bytes],
    cut_points: list[float],
    logging_steps: int,
    start_step: int,
    small_line_cap: bool,
) -> None:
    """What the supervisor does with a child's output: parse, fold into RunState, record."""
    import itertools
    import json

    from vlm_tui.core.output.run_state import RunState, metric_record, parser_for_run
    from vlm_tui.headless import progress_line

    data = _fuzz_stream(seed, count, raw)
    cuts = sorted({int(point * len(data)) for point in cut_points} | {0, len(data)})
    saved_cap = output_parser.MAX_LINE_CHARS
    if small_line_cap:
        # The runaway-line flush, without megabyte lines in every example.
        output_parser.MAX_LINE_CHARS = 700
    try:
        parser = parser_for_run({"logging_steps": logging_steps, "start_step": start_step})
        events: list[Event] = []
        for start, end in itertools.pairwise(cuts):
            events.extend(parser.feed(data[start:end]))
        events.extend(parser.finish())
    finally:
        output_parser.MAX_LINE_CHARS = saved_cap
    assert_no_parser_error(events)
    state = RunState()
    for number, event in enumerate(events):
        state.apply(event)
        record = metric_record(event, 1_700_000_000.0 + number)
        if record is not None:
            json.dumps(record, allow_nan=False)
        if isinstance(event, LogLine):
            assert "\n" not in event.text and "\r" not in event.text
            assert "\x1b" not in event.text and "\x00" not in event.text
    json.dumps(state.status_fields(), allow_nan=False, default=str)
    json.dumps(state.failure_fields(), allow_nan=False)
    progress_line(state)
