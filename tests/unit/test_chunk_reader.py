"""The supervisor's bulk reader (ChunkRecorder) keeps what the reference recorder keeps: the
same metrics.jsonl records, the same status fields after every read, the same failure hint, on
training floods and hostile output mixed and cut at random."""

from __future__ import annotations

import io
import json
import math
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.test_output_parser import ALL_FIXTURES, _fuzz_piece, logging_steps_for
from vlm_tui.core.output import chunk_reader
from vlm_tui.core.output.chunk_reader import ChunkRecorder, plain_dicts
from vlm_tui.core.output.failure_hints import hint_for_line, lines_that_may_hint
from vlm_tui.core.output.output_parser import PARSER_ERROR_PREFIX, LogLine, Metrics, parse_dict
from vlm_tui.core.output.run_state import OutputRecorder, RunState, parser_for_run
from vlm_tui.core.records.metrics_file import decode_lines, encode_line, encode_train_lines

# ---------------------------------------------------------------------------------------------
# A training's output: a flood of one bar, dicts over a cleared bar, and everything else


def _bar(step: int, total: int, desc: str = "") -> str:
    percent = min(step * 100 // max(total, 1), 100)
    cells = "\u2588" * (percent // 10)
    prefix = f"{desc}: " if desc else ""
    times = f"00:{step % 60:02d}<01:00"
    return f"{prefix}{percent:3d}%|{cells:<10}| {step}/{total} [{times},  2.22it/s]"


def _number(rng: random.Random) -> str:
    value = rng.choice([rng.uniform(0, 9), 10 ** rng.uniform(-8, 6), float(rng.randint(0, 5000))])
    roll = rng.random()
    if roll < 0.6:
        return f"'{value:.4g}'"  # transformers 5
    if roll < 0.8:
        return repr(value)  # older transformers
    return str(rng.randint(-5, 10**6))  # a count


_ODD_VALUES = ["nan", "True", "'x'", "1_0", "[1]", "'inf'"]


def _train_dict(rng: random.Random) -> str:
    keys = ["loss", "grad_norm", "learning_rate", "tokens/train_per_sec_per_gpu"]
    keys += rng.sample(["tokens/trainable", "memory/max_active (GiB)", "ppl", "epoch"], 2)
    pairs = [f"'{key}': {_number(rng)}" for key in keys]
    if rng.random() < 0.05:  # now and then a value the plain form does not hold
        pairs.append("'odd': " + rng.choice(_ODD_VALUES))
    return "{" + ", ".join(pairs) + "}"


_TRACEBACK = [
    "Traceback (most recent call last):",
    '  File "train.py", line 3, in <module>',
    "    main()",
    "FileNotFoundError: [Errno 2] No such file or directory: 'images/1.jpg'",
]
_LOG_LINES = [
    "[2026-11-24 11:18:09,750] [INFO] [axolotl.utils.samplers.multipack] [RANK:{rank}] packed",
    "[rank{rank}]:[W1124 11:20:52.667493 4202 ProcessGroupNCCL.cpp:4561] Warning: barrier slow",
    "[2026-11-24 11:18:29,550] [WARNING] [py.warnings] x.py:86: UserWarning: None of the inputs",
    "  warnings.warn(",
    "[rank{rank}]: torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB",
    "Saving model checkpoint to /out/checkpoint-{step}",
    "[2026-11-24 11:18:09,750] [INFO] [axolotl.train] Model successfully saved to /out",
    "RuntimeError: NCCL error in: ProcessGroupNCCL.cpp:1, unhandled system error",
    "\x1b[33mcoloured\x1b[0m warning: Connection closed by peer",
    "{'eval_loss': '2.5', 'eval_runtime': '1.2', 'epoch': '0.5'}",
    "{'train_runtime': '100.5', 'train_samples_per_second': '3.2', 'train_loss': '2.1'}",
    "[2026-11-24 11:18:09,750] [INFO] [axolotl.train] {'loss': '1.5', 'epoch': '1'}",
    "plain text with a {brace}",
]


def training_output(seed: int, pieces: int, hostile: float, cut_unranked: bool = True) -> bytes:
    """A training's output from a seed: mostly the flood, `hostile` of it from the parser's
    fuzz pool (invalid values, odd bars, ANSI, control characters). `cut_unranked`: a traceback
    without a rank may be cut short (every later line may then belong to it)."""
    rng = random.Random(seed)
    total = rng.choice([120, 580720, 1000])
    step = rng.randint(0, 50)
    # Mostly the trainer's bar comes first (an eval bar first would pass for the trainer's).
    out: list[str] = ["\r" + _bar(step, total)] if rng.random() < 0.9 else []
    for _ in range(pieces):
        roll = rng.random()
        if roll < hostile:
            out.append(_fuzz_piece(rng) + rng.choice(["\n", "\r", "\r\n", ""]))
        elif roll < 0.55:
            for _ in range(rng.randint(1, 12)):
                step += rng.choice([1, 1, 1, 0, 7])
                out.append("\r" + _bar(step, total))
        elif roll < 0.75:
            # A step's redraw comes first (now and then not: a dict right after a log line).
            if rng.random() < 0.95:
                step += 1
                out.append("\r" + _bar(step, total))
            clear = "\r" + " " * rng.choice([0, 55]) + "\r" if rng.random() < 0.9 else "\r"
            out.append(clear + _train_dict(rng) + rng.choice(["\n", "\n", "\r\n"]))
            out.append("\r" + _bar(step, total))
        elif roll < 0.85:
            line = rng.choice(_LOG_LINES).replace("{rank}", str(rng.randint(0, 3)))
            line = line.replace("{step}", str(step))
            out.append(line + "\n")
        elif roll < 0.9:
            # Now and then cut short: one rank died while printing it.
            lines = _TRACEBACK[: rng.randint(1, len(_TRACEBACK) - 1)]
            ranked = rng.random() < 0.6
            if rng.random() < 0.8:
                lines = _TRACEBACK
            elif not cut_unranked:
                ranked = True
            prefix = f"[rank{rng.randint(0, 3)}]: " if ranked else ""
            out.append("".join(prefix + line + "\n" for line in lines))
        elif roll < 0.95:
            for index in range(rng.randint(1, 5)):  # a nested eval bar
                out.append("\n" + _bar(index, 5) + "\x1b[A")
        else:
            out.append("\r" + _bar(rng.randint(0, 9), 9, desc="Map") + "\n")
    return "".join(out).encode("utf-8", errors="surrogatepass")


def record(recorder_type: type[OutputRecorder], data: bytes, cuts: list[int], steps: int) -> dict:
    """What a recorder keeps of `data` read in pieces ending at `cuts`: records, the status
    after every read and at the end, the hint, the state's series."""
    state = RunState()
    sink = io.StringIO()
    recorder = recorder_type(parser_for_run({"logging_steps": steps}), state, sink)
    statuses = []
    start = 0
    for number, end in enumerate([*cuts, len(data)]):
        recorder.feed(data[start:end], 1_700_000_000.0 + number)
        statuses.append((state.status_fields(), state.failure_fields()))
        start = end
    recorder.finish(1_800_000_000.0)
    statuses.append((state.status_fields(), state.failure_fields()))
    return {
        "records": decode_lines(sink.getvalue().splitlines()),
        "statuses": statuses,
        "series": (state.losses, state.learning_rates, state.eval_losses),
        "numbers": (state.tokens_per_second_per_gpu, state.most_trainable_tokens),
        "gradient": (state.largest_grad_norm, state.nothing_trained()),
    }


def assert_same_as_reference(data: bytes, cuts: list[int], steps: int = 10) -> None:
    fast = record(ChunkRecorder, data, cuts, steps)
    reference = record(OutputRecorder, data, cuts, steps)
    assert len(fast["records"]) == len(reference["records"])
    for got, want in zip(fast["records"], reference["records"], strict=True):
        # ==, not repr: a quoted whole number is 2920 in one, 2920.0 in the other.
        assert got == want
    for index, (got, want) in enumerate(zip(fast["statuses"], reference["statuses"], strict=True)):
        assert got == want, f"after read {index}"
    # repr: a NaN in a series is not equal to itself.
    del fast["records"], reference["records"]
    assert repr(fast) == repr(reference)


@settings(
    max_examples=800,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    seed=st.integers(0, 2**32 - 1),
    pieces=st.integers(1, 400),
    hostile=st.sampled_from([0.0, 0.0, 0.05, 0.3]),
    cut_points=st.lists(st.floats(0, 1), max_size=12),
    steps=st.integers(1, 10),
)
def test_the_bulk_reader_keeps_what_the_reference_keeps(
    seed: int, pieces: int, hostile: float, cut_points: list[float], steps: int
) -> None:
    data = training_output(seed, pieces, hostile)
    cuts = sorted({int(point * len(data)) for point in cut_points})
    assert_same_as_reference(data, cuts, steps)


@pytest.mark.parametrize("seed", range(2))
def test_a_long_flood_in_1_mib_reads_is_read_in_bulk_and_kept_alike(seed: int) -> None:
    data = training_output(seed, 60_000, 0.0, cut_unranked=False)
    assert len(data) > 2 << 20
    cuts = list(range(1 << 20, len(data), 1 << 20))
    assert_same_as_reference(data, cuts)
    # The bulk path did the work: most dicts never reached the reference parser.
    state = RunState()
    recorder = ChunkRecorder(parser_for_run({"logging_steps": 10}), state, io.StringIO())
    events = []
    start = 0
    for end in [*cuts, len(data)]:
        events += recorder.feed(data[start:end], 0.0)
        start = end
    read_by_reference = sum(isinstance(event, Metrics) for event in events)
    assert len(state.losses) > 3 * max(read_by_reference, 1)


@pytest.mark.parametrize("path", ALL_FIXTURES, ids=lambda path: path.name)
def test_real_and_handmade_logs_are_kept_alike_in_any_reads(path: Path) -> None:
    data = path.read_bytes()
    steps = logging_steps_for(path)
    for size in (len(data), 1 << 16, 4096, 777):
        assert_same_as_reference(data, list(range(size, len(data), size)), steps)


# ---------------------------------------------------------------------------------------------
# The pieces


def test_plain_dicts_read_what_the_reference_reads() -> None:
    texts = [
        "{'loss': '2.563', 'grad_norm': 0.4573, 'tokens/trainable': 81920, 'epoch': '5.166e-05'}",
        "{'loss': '2920', 'n': -3, 'z': '-0', 'big': 1e308, 'huge': '1e999'}",
        "{'memory/max_active (GiB)': '61.2', '': 1}",
    ]
    read = plain_dicts(texts)
    for text, got in zip(texts, read, strict=True):
        assert got is not None
        values, obj = got
        assert values == parse_dict(text)[1]
        assert json.loads(obj) == values
    # A quoted whole number reads as the same number (the reference makes it a float).
    assert read[1] is not None and read[1][0]["loss"] == 2920.0


@pytest.mark.parametrize(
    "text",
    [
        "{'loss': 'nan'}",
        "{'loss': nan}",
        "{'loss': '2.5', 'flag': True}",
        "{'loss': '2.5', 'name': 'x'}",
        "{'loss': {'inner': 1}}",
        "{'loss': [1, 2]}",
        "{'loss': '1.'}",
        "{'loss': '.5'}",
        "{'loss': '+1'}",
        "{'loss': '007'}",
        "{'loss': '1_000'}",
        "{'loss': " + "1" * 16 + "}",
        "{'loss': '0." + "1" * 70 + "'}",
        "{'" + "k" * 201 + "': 1}",
        "{'a{': 1}",
        "{'a, b': '1'}",
        "{'a': 1,'b': 2}",
        '{"loss": 1}',
        "{'lo\\'ss': 1}",
        "{}",
        "{'loss': 1} ",
    ],
)
def test_plain_dicts_leave_anything_else_to_the_reference(text: str) -> None:
    assert plain_dicts([text, "{'loss': '1.5'}"]) == [None, ({"loss": 1.5}, '{"loss": 1.5}')]


def test_plain_dicts_of_nothing() -> None:
    assert plain_dicts([]) == []


def test_lines_that_may_hint_are_the_lines_the_scanner_may_match() -> None:
    lines = [
        "ordinary",
        "torch.OutOfMemoryError: CUDA out of memory. Tried",
        "x",
        "\x1b[31mKilled\x1b[0m",
        "exitcode  : -9 and Killed",
        "",
        "ends with a needle: Connection closed by peer",
    ]
    assert lines_that_may_hint(lines) == [1, 3, 4, 6]
    assert all(hint_for_line(lines[index]) is None for index in (0, 2, 5))
    assert lines_that_may_hint([]) == []
    assert lines_that_may_hint(["nothing", "here"]) == []


def test_absorbing_training_dicts_at_once_is_applying_each() -> None:
    rng = random.Random(3)
    dicts: list[dict[str, float | int]] = []
    for _ in range(50):
        values: dict[str, float | int] = {"loss": rng.uniform(0, 3)}
        if rng.random() < 0.7:
            values["learning_rate"] = rng.uniform(0, 1e-3)
        if rng.random() < 0.7:
            values["tokens/train_per_sec_per_gpu"] = rng.choice([rng.randint(0, 9), math.inf])
        if rng.random() < 0.7:
            values["tokens/trainable"] = rng.choice([0, rng.randint(0, 99), math.nan])
        if rng.random() < 0.7:
            values["grad_norm"] = rng.choice([0.0, rng.uniform(0, 2)])
        dicts.append(values)
    steps = list(range(10, 510, 10))
    for cut in (0, 1, 25, 50):
        at_once, one_by_one = RunState(), RunState()
        at_once.absorb_training_dicts(steps[:cut], dicts[:cut])
        at_once.absorb_training_dicts(steps[cut:], dicts[cut:])
        for step, values in zip(steps, dicts, strict=True):
            one_by_one.apply(Metrics(step, values))
        assert _fields(at_once) == _fields(one_by_one)


def _fields(state: RunState) -> dict[str, object]:
    return {name: value for name, value in vars(state).items() if name != "failures"}


def test_train_lines_from_json_objects_decode_as_encode_line_writes() -> None:
    objects = ['{"loss": 2.5, "n": 3}', "{}", '{"step": 99}']
    lines = encode_train_lines(12.3456, [1, 2, 3], objects).splitlines()
    expected = [
        encode_line({"kind": "train", "time": 12.346, "step": step, **json.loads(obj)})
        for step, obj in zip([1, 2, 3], objects, strict=True)
    ]
    assert decode_lines(lines) == decode_lines(expected)
    assert all(line.startswith('{"kind": "train"') for line in lines)


def test_a_bug_in_the_bulk_reader_is_a_log_line_not_a_crash(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(self: ChunkRecorder, line: str) -> int | None:
        raise RuntimeError("boom")

    monkeypatch.setattr(ChunkRecorder, "_dict_bar_step", broken)
    state = RunState()
    recorder = ChunkRecorder(parser_for_run({}), state, io.StringIO())
    # The first read shows the trainer's bar; the bulk reader takes the reads after it.
    recorder.feed(("\r" + _bar(1, 580720) + "\n").encode(), 1.0)
    assert recorder.parser.trainer_total == 580720
    events = recorder.feed(training_output(5, 300, 0.0), 1.0)
    lines = [event.text for event in events if isinstance(event, LogLine)]
    errors = [line for line in lines if line.startswith(PARSER_ERROR_PREFIX)]
    assert errors == [f"{PARSER_ERROR_PREFIX}RuntimeError: boom"]
    recorder.finish(2.0)  # and it goes on


def test_a_rewrite_json_cannot_read_leaves_the_dicts_to_the_reference(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(chunk_reader, "_TO_JSON", (("'", "`"),))
    assert plain_dicts(["{'loss': '1.5'}", "{'loss': 2}"]) == [None, None]
