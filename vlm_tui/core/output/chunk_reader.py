"""The supervisor's reading of a training's output: per read of the log, not per line.

Most of a flood is lines that change nothing the supervisor records: bar redraws that a later
redraw replaces, log lines that no failure rule can match. The reference parser (OutputParser,
which the log views follow) still reads each of them; ChunkRecorder finds the lines that
matter with operations that run in C over the whole read (split, find, one search of the
failure prefilter) and hands only those to the reference, line by line, keeping the parser's
state (trainer bar, step, tracebacks) as the reference would have it. The metric dicts, the
lines that do matter in a flood, are read in bulk: checked against the plain form a training
prints by one regex over all of them, rewritten to JSON by a few replaces, decoded by one
json.loads, and recorded from that JSON text.

What the supervisor keeps is the reference's (tests/unit/test_chunk_reader.py compares them on
random mixes cut at random): the metric records, the status fields, the failure hint.
One difference no reader sees: a metric printed as a quoted whole number ('2920') is written
as 2920 rather than 2920.0.
"""

from __future__ import annotations

import json
import re
from typing import IO

from vlm_tui.core.output.failure_hints import lines_that_may_hint
from vlm_tui.core.output.output_parser import (
    MAX_LINE_CHARS,
    SAVE_LINE_MARK,
    TRACEBACK_HEAD,
    BarForm,
    Event,
    OutputParser,
    clean_text,
    parser_error,
)
from vlm_tui.core.output.run_state import OutputRecorder, RunState, metric_line
from vlm_tui.core.records.metrics_file import encode_train_lines

# The plain form of a metric dict: "{'loss': '2.56', 'grad_norm': 0.4, ...}". Keys hold none of
# the characters the rewrite to JSON keys on; numbers are JSON's, short enough that the
# reference reads them (and a whole one below 2**53, so a float of it is exact).
# Possessive repeats: nothing in the form needs backtracking, and it checks three times faster.
_KEY = r"'[^'\"\\\t\n{},:]{0,200}+'"
_NUMBER = r"-?+(?:0|[1-9][0-9]{0,14}+)(?:\.[0-9]{1,30}+)?+(?:[eE][+-]?+[0-9]{1,3}+)?+"
_PAIR = rf"{_KEY}: (?:'{_NUMBER}'|{_NUMBER})"
_PLAIN_DICT = rf"\{{{_PAIR}(?:, {_PAIR})*+\}}"
_PLAIN_DICTS = re.compile(rf"{_PLAIN_DICT}(?:\n{_PLAIN_DICT})*+")
_ONE_PLAIN_DICT = re.compile(_PLAIN_DICT)
# Plain dicts to JSON: every quote is a key's or a quoted number's, told apart by what is
# around it. The order matters: a quoted value's quotes go before an unquoted one's neighbours.
_TO_JSON = (
    ("{'", '{"'),
    ("': '", '": '),
    ("', '", ', "'),
    ("': ", '": '),
    (", '", ', "'),
    ("'}", "}"),
)

# A line whose raw text is not what the reference reads (ANSI codes, control characters).
_UNCLEAN = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\x1b]")
# Every byte but those: deleting them from a read leaves its control characters (one C pass).
_NOT_CONTROL_BYTES = bytes(
    byte for byte in range(256) if not (byte < 32 or byte == 127) or byte in b"\t\n\r"
)
# Lines the reference reads whatever else: a save, a traceback's start.
_REFERENCE_MARKS = (SAVE_LINE_MARK, TRACEBACK_HEAD)
# A line's rank is named by one of these; it matters to a traceback of that rank being read.
_RANK_MARKS = ("[rank", "[RANK:")
_RANK_NUMBER = re.compile(r"\[(?:rank|RANK:)(\d{1,9})", re.ASCII)

# How a scaled total ends in a bar ("580.72k [00:01<...").
_SCALED_TOTAL_ENDS = tuple(f"{unit} [" for unit in "kMGTPEZY")

_DICT, _REFERENCE, _RANKED = range(3)


def plain_dicts(texts: list[str]) -> list[tuple[dict[str, float | int], str] | None]:
    """Each text's values and its JSON object, for texts in the plain form; None for others
    (the reference reads those)."""
    if not texts:
        return []
    if _PLAIN_DICTS.fullmatch("\n".join(texts)):
        plain = list(range(len(texts)))
    else:
        plain = [index for index, text in enumerate(texts) if _ONE_PLAIN_DICT.fullmatch(text)]
    if not plain:
        return [None] * len(texts)
    joined = "\n".join(texts[index] for index in plain)
    for old, new in _TO_JSON:
        joined = joined.replace(old, new)
    objects = joined.split("\n")
    read: list[tuple[dict[str, float | int], str] | None] = [None] * len(texts)
    try:
        values = json.loads("[" + joined.replace("}\n{", "},{") + "]")
    except ValueError:  # the form rules this out; the reference reads them if it ever is not
        return read
    if len(values) != len(plain):
        return read
    for index, value, obj in zip(plain, values, objects, strict=True):
        read[index] = (value, obj)
    return read


def _training_dict(text: str, values: dict[str, float | int]) -> bool:
    """A dict the reference reads as a training step's Metrics (not eval, not the summary)."""
    return "loss" in values and "'eval_" not in text and "'train_runtime'" not in text


class _ChunkOutput:
    """What one chunk gives, in order: events from the reference (folded into the state as
    they come) and training dicts read in bulk, waiting to be folded in and written."""

    __slots__ = ("absorbed", "events", "objects", "state", "steps", "time", "values", "written")

    def __init__(self, state: RunState, time: float) -> None:
        self.state = state
        self.time = time
        self.events: list[Event] = []
        self.absorbed = 0
        self.written: list[str] = []
        self.steps: list[int] = []
        self.values: list[dict[str, float | int]] = []
        self.objects: list[str] = []

    def flush(self) -> None:
        """The events not yet folded in, then the dicts read since: into the state, and their
        record lines after the ones before."""
        fresh = self.events[self.absorbed :]
        if fresh:
            self.state.absorb(fresh)
            self.written += [line for event in fresh if (line := metric_line(event, self.time))]
            self.absorbed = len(self.events)
        if self.steps:
            self.state.absorb_training_dicts(self.steps, self.values)
            self.written.append(encode_train_lines(self.time, self.steps, self.objects))
            self.steps, self.values, self.objects = [], [], []


class ChunkRecorder(OutputRecorder):
    """OutputRecorder that reads each chunk as a whole: the same records, state and hint."""

    def __init__(self, parser: OutputParser, state: RunState, metrics: IO[str]) -> None:
        super().__init__(parser, state, metrics)
        # The trainer bar's form, its total's text and where that starts: a dict's step is read
        # from the bar before it by slicing.
        self._trainer: tuple[BarForm, str, int] | None = None

    def feed(self, chunk: bytes, time: float) -> list[Event]:
        """Record a chunk read at `time`; the events of the lines the reference read (the
        dicts read in bulk are not among them)."""
        parser = self.parser
        try:
            controls = bool(chunk.translate(None, _NOT_CONTROL_BYTES).strip(b"\x1b"))
            text = parser.decode(chunk)
        except Exception:  # not bytes: the reference copes with anything
            return super().feed(chunk, time)
        first_end = text.find("\n")
        last_end = text.rfind("\n")
        output = _ChunkOutput(self.state, time)
        if first_end == last_end or parser.trainer_total is None:
            output.events += parser.feed_text(text)
        else:
            output.events += parser.feed_text(text[: first_end + 1])
            if parser.at_line_start:
                lines = text[first_end + 1 : last_end].split("\n")
                try:
                    self._read_lines(lines, output, controls)
                except Exception as exc:  # as the parser does: never let a bug stop a run
                    output.events.append(parser_error(exc))
            else:  # never after a whole line; the reference takes the rest if it ever is
                output.events += parser.feed_text(text[first_end + 1 : last_end + 1])
            output.events += parser.feed_text(text[last_end + 1 :])
        output.flush()
        self.metrics.write("".join(output.written))
        self.metrics.flush()
        return output.events

    def _read_lines(self, lines: list[str], output: _ChunkOutput, controls: bool) -> None:
        """Whole lines: the ones that matter through the reference, dicts in bulk. `controls`:
        they may hold control characters other than escapes."""
        parser = self.parser
        # Lines as the reference reads them: each carriage-return segment cleaned of ANSI codes
        # and control characters (tqdm's nested bars end with a cursor move up).
        shown = lines
        if controls:
            shown = [_cleaned(line) if _UNCLEAN.search(line) else line for line in lines]
        elif "\x1b" in "".join(lines):
            shown = [_cleaned(line) if "\x1b" in line else line for line in lines]
        # What of each line the reference keeps as its LogLine text: in its last segment, unless
        # that ends like a bar (a bar alone leaves the text of a segment before it standing, so
        # then the whole line stands for it).
        lasts = [line.rstrip().rpartition("\r")[2] for line in shown]
        lasts = [
            line if last[-1:] == "]" else last for line, last in zip(shown, lasts, strict=True)
        ]
        kinds = self._line_kinds(shown, lasts)
        reference = set(kinds[_REFERENCE])
        fast: dict[int, tuple[dict[str, float | int], str]] = {}
        read = plain_dicts([lasts[index] for index in kinds[_DICT]])
        for index, dict_read in zip(kinds[_DICT], read, strict=True):
            if dict_read is not None and _training_dict(lasts[index], dict_read[0]):
                fast[index] = dict_read
            else:
                reference.add(index)
        order = sorted({*fast, *reference, *kinds[_RANKED]})
        exact_to = -1  # the parser's state is the reference's after this line
        next_line = 0
        position = 0
        while True:
            ranks = parser.traceback_ranks
            if None in ranks and next_line < len(lines):
                # A traceback without a rank is being read: any line may be part of it.
                index = next_line
                while position < len(order) and order[position] <= index:
                    position += 1
            elif position < len(order):
                index = order[position]
                position += 1
                if index in reference:
                    pass
                elif index in fast:
                    step = self._dict_bar_step(shown[index])
                    if step is not None:
                        parser.trainer_step_read(step)
                        output.steps.append(parser.next_train_step())
                        values, obj = fast[index]
                        output.values.append(values)
                        output.objects.append(obj)
                        next_line = index + 1
                        continue
                elif not ranks or ranks.isdisjoint(_named_ranks(lasts[index])):
                    continue  # a line of another rank than the tracebacks being read
            else:
                break
            self._settle_bars(shown, exact_to, index, output.events)
            output.flush()
            output.events += parser.feed_text(lines[index] + "\n")
            exact_to = index
            next_line = index + 1
        self._settle_bars(shown, exact_to, len(lines), output.events)

    def _line_kinds(self, lines: list[str], lasts: list[str]) -> dict[int, list[int]]:
        """Line indexes: dicts to read in bulk, lines for the reference, lines naming a rank."""
        dict_lines = [index for index, last in enumerate(lasts) if "{" in last]
        reference = [index for index in dict_lines if lasts[index][:1] != "{"]
        scanned = lasts.copy()
        for index in dict_lines:
            scanned[index] = ""
        reference += lines_that_may_hint(scanned)
        joined = "\n".join(scanned)
        for mark in _REFERENCE_MARKS:
            reference += _lines_with(joined, mark)
        if sum(map(len, lines)) > MAX_LINE_CHARS:
            reference += [index for index, line in enumerate(lines) if len(line) > MAX_LINE_CHARS]
        ranked: list[int] = []
        if self.parser.traceback_ranks or TRACEBACK_HEAD in joined:
            for mark in _RANK_MARKS:
                ranked += _lines_with(joined, mark)
        return {_DICT: dict_lines, _REFERENCE: reference, _RANKED: ranked}

    def _dict_bar_step(self, line: str) -> int | None:
        """The trainer's step shown by the bar drawn just before a dict line's dict (blank
        segments between), or None when something else is there."""
        line = line.rstrip()
        end = line.rfind("\r")
        while end > 0:
            start = line.rfind("\r", 0, end)
            segment = line[start + 1 : end]
            if segment and not segment.isspace():
                return self._trainer_step(segment)
            end = start
        return None

    def _trainer_step(self, segment: str) -> int | None:
        trainer = self._trainer
        if trainer is not None:
            step = trainer[0].step_of(segment, trainer[1], trainer[2])
            if step is not None:
                return step
        if not self._may_be_trainer_bar(segment):
            return None
        read = self.parser.read_bar(segment)
        if read is None or not self.parser.is_trainer_bar(read[0]):
            return None
        progress, form = read
        if form is not None:
            self._trainer = (form, *form.total_of(segment))
        return progress.step

    def _may_be_trainer_bar(self, segment: str) -> bool:
        """False for a segment that cannot show the trainer's total: "/{total}", or a total
        tqdm scaled ("580.72k")."""
        return f"/{self.parser.trainer_total}" in segment or any(
            scaled in segment for scaled in _SCALED_TOTAL_ENDS
        )

    def _settle_bars(self, lines: list[str], after: int, before: int, events: list[Event]) -> None:
        """The last trainer bar drawn on the skipped lines between two (exclusive), as the
        reference would have read it: the parser's trainer step and the state's progress."""
        parser = self.parser
        for index in range(before - 1, after, -1):
            line = lines[index]
            end = len(line)
            while end >= 0:
                start = line.rfind("\r", 0, end)
                segment = line[start + 1 : end]
                end = start
                if not segment or segment.isspace() or not self._may_be_trainer_bar(segment):
                    continue
                read = parser.read_bar(segment)
                if read is not None and parser.is_trainer_bar(read[0]):
                    parser.bar_read(read[0], events)
                    return


def _cleaned(line: str) -> str:
    """A line with each segment as the reference cleans it."""
    return "\r".join(clean_text(segment) for segment in line.split("\r"))


def _named_ranks(text: str) -> set[int | None]:
    """The ranks a line's text names anywhere ("[rank3]:", axolotl's "[RANK:3]"): its own rank
    is among them if it has one."""
    return {int(number) for number in _RANK_NUMBER.findall(text)}


def _lines_with(joined: str, mark: str) -> list[int]:
    """Indexes of the lines of a newline-joined text that hold `mark`."""
    found: list[int] = []
    index, counted_to = 0, 0
    at = joined.find(mark)
    while at >= 0:
        index += joined.count("\n", counted_to, at)
        counted_to = at
        found.append(index)
        line_end = joined.find("\n", at)
        if line_end < 0:
            break
        at = joined.find(mark, line_end)
    return found
