"""Turn a training child's raw output bytes into events.

The child's stdout and stderr share one pipe, so the order of what it printed is kept: the
tqdm bar (stderr, redrawn with ``\\r``), axolotl log lines and metric dicts (stdout), and
tracebacks. The parser is pure (no I/O, stdlib only), incremental (bytes may be split
anywhere, even inside a UTF-8 character or a ``\\r\\n``) and never raises, whatever it is fed.

Lines end at ``\\n``; within a line, ``\\r`` separates tqdm redraws ("segments"). Every bar
segment gives a Progress (consecutive ones for the same bar collapse within one feed()), and
each physical line gives one LogLine: its last non-bar segment (a dict written by tqdm.write()
after clearing the bar, or a log line printed right after a bar), plus the final bar when the
line ends with one. Metric dicts carry no step: it is inferred from the trainer's bar and
logging_steps (see ``_dict``).

Most of a training's output is redraws of one bar, so they cost little: a redraw that a later
redraw of the same bar in the same feed replaces is recognised by its form (its text with
digits as '0') and skipped, another state of a known bar is read by slicing rather than by the
regexes, and what nothing may read (a line's level, a bar's rate and times) is parsed on first
use. bench/parser_throughput.py measures it.
"""

from __future__ import annotations

import codecs
import re
from collections import deque
from dataclasses import dataclass
from typing import TypeAlias

__all__ = [
    "MAX_LINE_CHARS",
    "MAX_TRACEBACK_LINES",
    "PARSER_ERROR_PREFIX",
    "SAVE_LINE_MARK",
    "TRACEBACK_HEAD",
    "CheckpointSaved",
    "EvalMetrics",
    "Event",
    "LogLine",
    "Metrics",
    "ModelSaved",
    "OutputParser",
    "Progress",
    "Summary",
    "TracebackEvent",
    "TrainingCompleted",
]

# A longer unterminated line is flushed as it is, so one runaway line cannot eat memory.
MAX_LINE_CHARS = 1 << 20
# Only the last lines of a traceback are kept; the end is what explains the failure.
MAX_TRACEBACK_LINES = 200
# Open tracebacks are kept per rank; a stream claiming endless ranks cannot grow this past it.
_MAX_OPEN_TRACEBACKS = 256
# A LogLine starting with this reports a bug in the parser itself (it never raises instead).
PARSER_ERROR_PREFIX = "[vlm-tui] output parser error: "

# Bars are short: the bar regexes look at this many characters at most, so a long line
# costs no regex backtracking.
_BAR_SCAN_CHARS = 1024
# Dicts longer than this are shown but not parsed (metric dicts are a few hundred chars).
_DICT_MAX_CHARS = 1 << 16
# A torchrun ChildFailedError box is about 15 lines; more than this is not a box.
_BOX_MAX_LINES = 400


# ---------------------------------------------------------------------------------------------
# Events


class LogLine:
    """A complete physical line as a log view shows it (ANSI codes stripped).

    level, logger and rank are read from the text when first asked for: a log view needs only
    the text, and classifying every line of a flood would cost more than parsing the rest.
    `metrics` says the line is a dict the parser read as a Metrics, EvalMetrics or Summary event.
    Read-only, like the other events.
    """

    __slots__ = ("_fields", "metrics", "text")

    def __init__(
        self,
        text: str,
        level: str | None = None,
        logger: str | None = None,
        rank: int | None = None,
        *,
        metrics: bool = False,
    ) -> None:
        self.text = text
        self.metrics = metrics
        self._fields: tuple[str | None, str | None, int | None] | None = (level, logger, rank)

    @classmethod
    def of_text(cls, text: str, *, metrics: bool = False) -> LogLine:
        """A line whose level, logger and rank are read from its text on first use."""
        line = cls.__new__(cls)
        line.text = text
        line.metrics = metrics
        line._fields = None
        return line

    def _read(self) -> tuple[str | None, str | None, int | None]:
        fields = self._fields
        if fields is None:
            fields = self._fields = classify_line(self.text)
        return fields

    @property
    def level(self) -> str | None:
        return self._read()[0]

    @property
    def logger(self) -> str | None:
        return self._read()[1]

    @property
    def rank(self) -> int | None:
        return self._read()[2]

    def _key(self) -> tuple[str, str | None, str | None, int | None, bool]:
        return (self.text, *self._read(), self.metrics)

    def __eq__(self, other: object) -> bool:
        if type(other) is not LogLine:
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        level, logger, rank = self._read()
        return (
            f"LogLine(text={self.text!r}, level={level!r}, logger={logger!r}, rank={rank!r}"
            f"{', metrics=True' if self.metrics else ''})"
        )


class Progress:
    """One state of a tqdm bar.

    The rate and times of a parsed bar are read from its text when first asked for: status.json
    shows them once a second, while a bar may be redrawn thousands of times in that second.
    Read-only, like the other events.
    """

    __slots__ = ("_raw", "_timing", "description", "step", "total")

    def __init__(
        self,
        step: int,
        total: int | None,
        steps_per_second: float | None,
        elapsed_s: float | None,
        remaining_s: float | None,
        description: str,
    ) -> None:
        self.step = step
        self.total = total
        self.description = description
        self._timing: tuple[float | None, float | None, float | None] | None = (
            steps_per_second,
            elapsed_s,
            remaining_s,
        )
        self._raw: tuple[str | None, str | None, str | None] = (None, None, None)

    @classmethod
    def of_bar(
        cls,
        step: int,
        total: int | None,
        description: str,
        rate: str | None,
        elapsed: str | None,
        remaining: str | None,
    ) -> Progress:
        """A state whose rate and times are parsed from the bar's texts on first use."""
        progress = cls.__new__(cls)
        progress.step = step
        progress.total = total
        progress.description = description
        progress._timing = None
        progress._raw = (rate, elapsed, remaining)
        return progress

    def _times(self) -> tuple[float | None, float | None, float | None]:
        timing = self._timing
        if timing is None:
            rate, elapsed, remaining = self._raw
            try:
                timing = (parse_rate(rate), parse_interval(elapsed), parse_interval(remaining))
            except (ValueError, OverflowError):  # the bar regex rules these out; never raise
                timing = (None, None, None)
            self._timing = timing
        return timing

    @property
    def steps_per_second(self) -> float | None:
        return self._times()[0]

    @property
    def elapsed_s(self) -> float | None:
        return self._times()[1]

    @property
    def remaining_s(self) -> float | None:
        return self._times()[2]

    def _key(self) -> tuple[int, int | None, float | None, float | None, float | None, str]:
        return (self.step, self.total, *self._times(), self.description)

    def __eq__(self, other: object) -> bool:
        if type(other) is not Progress:
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        rate, elapsed, remaining = self._times()
        return (
            f"Progress(step={self.step!r}, total={self.total!r}, steps_per_second={rate!r}, "
            f"elapsed_s={elapsed!r}, remaining_s={remaining!r}, "
            f"description={self.description!r})"
        )


@dataclass(frozen=True, slots=True)
class Metrics:
    """A training log dict (has 'loss'); the step is inferred, the dict carries none."""

    step: int
    values: dict[str, float | int]


@dataclass(frozen=True, slots=True)
class EvalMetrics:
    """A dict with eval_ keys, stamped with the current training step."""

    step: int
    values: dict[str, float | int]


@dataclass(frozen=True, slots=True)
class Summary:
    """The final dict with 'train_runtime'."""

    values: dict[str, float | int]


@dataclass(frozen=True, slots=True)
class CheckpointSaved:
    """'Saving model checkpoint to PATH'. step is None when PATH is not a checkpoint-N folder
    (transformers prints the same line for the final save into output_dir)."""

    path: str
    step: int | None


@dataclass(frozen=True, slots=True)
class ModelSaved:
    """axolotl's 'Model successfully saved to PATH'."""

    path: str


@dataclass(frozen=True, slots=True)
class TrainingCompleted:
    """axolotl's 'Training completed! Saving trained model to PATH.'"""

    path: str


@dataclass(frozen=True, slots=True)
class TracebackEvent:
    """A whole Python traceback, emitted when its exception line arrives.

    A chained traceback ('During handling of the above exception...') gives one event per
    exception line; each later event carries all the lines so far, so the last one wins.
    """

    lines: tuple[str, ...]
    error: str
    rank: int | None


Event: TypeAlias = (
    LogLine
    | Progress
    | Metrics
    | EvalMetrics
    | Summary
    | CheckpointSaved
    | ModelSaved
    | TrainingCompleted
    | TracebackEvent
)


# ---------------------------------------------------------------------------------------------
# Patterns

# CSI (colours, cursor moves such as tqdm's "\x1b[A"), OSC, and other two-byte escapes.
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])|\x1b")
# Control characters other than tab; NULs and the like would upset a terminal widget.
_CTRL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")

# Digit counts are bounded so that int()/float() of a hostile number cannot fail or overflow.
_NUM = r"\d{1,15}(?:\.\d{1,6})?[kMGTPEZY]?"
_TIME = r"(?:\d{1,6} days?, )?-?\d{1,9}(?::\d\d){1,2}"
_BRACKET = (
    rf"\[(?P<el>{_TIME})(?:<(?P<rem>{_TIME}|\?))?"
    r"(?:, *(?P<rate>[^,\]]*))?(?:,[^\]]*)?\]"
)
# tqdm: "{desc}: {pct:3.0f}%|{bar}| {n}/{total} [{elapsed}<{remaining}, {rate}{postfix}]",
# with ncols=0 the bar and its pipes become one space.
# The description may not hold "|[]", so it cannot reach across an earlier bar.
_DESC = r"(?:(?P<desc>[^|\[\]]*?): )?"
_BAR_TOTAL = re.compile(
    rf"{_DESC}\s*\d{{1,3}}%(?:\|[^|]*\| | )(?P<n>{_NUM})/(?P<total>{_NUM}) {_BRACKET}",
    re.ASCII,
)
# tqdm with an unknown total: "{desc}: {n}{unit} [{elapsed}, {rate}{postfix}]".
_BAR_NOTOTAL = re.compile(rf"{_DESC}(?P<n>{_NUM})[^\[\]|]{{0,40}}? {_BRACKET}", re.ASCII)
_RATE_NUM = re.compile(r"\d{1,15}(?:\.\d{1,9})?", re.ASCII)
_SCALE = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}
_SCALE.update({"P": 10**15, "E": 10**18, "Z": 10**21, "Y": 10**24})

_RANK_PREFIX = re.compile(r"\[rank(\d{1,9})\]: ?", re.ASCII)
# axolotl: "[2026-11-24 11:14:02,823] [INFO] [axolotl.train] [RANK:1] msg" (the verbose format
# adds ".func:line" to the logger and " [PID:n]").
_AXOLOTL = re.compile(
    r"\[\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:[,.]\d+)?\] \[(?P<level>[A-Z]+)\] "
    r"\[(?P<logger>[^\]]+)\](?: \[PID:\d+\])?(?: \[RANK:(?P<rank>\d{1,9})\])? ?",
    re.ASCII,
)
# glog style used by torch (C++ and torch.distributed.elastic):
# "[W1124 11:14:02.123456 123 socket.cpp:764] msg" or "E1124 ... api.py:882] msg".
_GLOG = re.compile(r"\[?(?P<level>[IWEF])\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ (?P<logger>[^\]]+)\] ?")
_GLOG_LEVELS = {"I": "INFO", "W": "WARNING", "E": "ERROR", "F": "CRITICAL"}
# logging.basicConfig's default "LEVEL:logger:msg".
_BASIC = re.compile(r"(?P<level>DEBUG|INFO|WARNING|ERROR|CRITICAL):(?P<logger>[\w.]*):")
# warnings.showwarning: "path.py:12: UserWarning: msg".
_PYWARN = re.compile(r"\S.*?:\d+: \w*Warning: ")

TRACEBACK_HEAD = "Traceback (most recent call last):"
# In each of the save lines (checkpoint, model saved, training completed): a cheap first test.
SAVE_LINE_MARK = "odel "
_TB_CHAIN = (
    "During handling of the above exception",
    "The above exception was the direct cause",
)
# "pkg.mod.ExcName: message" or a bare "ExcName".
_EXC_LINE = re.compile(r"(?P<name>[A-Za-z_][\w.]*)(?P<colon>:)?(?P<msg>.*)")
_EXC_BARE_SUFFIXES = ("Error", "Exception", "Interrupt", "Exit", "Iteration", "Warning")

# Keys and values hold no quotes and are short: every attempt stops at the next quote, so a
# hostile line costs linear time.
_DICT_PAIR = re.compile(
    r"""[{,]\s*(?P<q>['"])(?P<key>[^'"]{0,200})(?P=q)\s*:\s*"""
    r"""(?P<val>'[^']{0,100}'|"[^"]{0,100}"|[^,{}\[\]()'"]{0,100})"""
)
_CHECKPOINT_STEP = re.compile(r"checkpoint-(\d{1,18})/*$", re.ASCII)
_PID = re.compile(r"\s*\(pid: \d+\)")

_CKPT_PREFIX = "Saving model checkpoint to "
_MODEL_SAVED_PREFIX = "Model successfully saved to "
_COMPLETED_PREFIX = "Training completed! Saving trained model to "


# ---------------------------------------------------------------------------------------------
# Small pure helpers


def clean_text(raw: str) -> str:
    """Strip ANSI escapes, control characters and trailing whitespace."""
    if "\x1b" in raw:
        raw = _ANSI.sub("", raw)
    if not raw.isprintable():
        raw = _CTRL.sub("", raw)
    return raw.rstrip()


def _count(text: str) -> int:
    scale = _SCALE.get(text[-1], 0) if text else 0
    if scale:
        return round(float(text[:-1]) * scale)
    return int(text) if text.isdigit() else round(float(text))


def parse_interval(text: str | None) -> float | None:
    """tqdm's "MM:SS" / "H:MM:SS" (also "2 days, H:MM:SS"); None for "?"."""
    if not text or text == "?":
        return None
    days = 0
    if "day" in text:
        head, _, text = text.partition(", ")
        days = int(head.split()[0])
    sign = -1 if text.startswith("-") else 1
    total = 0
    for part in text.lstrip("-").split(":"):
        total = total * 60 + int(part)
    return float(days * 86400 + sign * total)


def parse_rate(text: str | None) -> float | None:
    """Items per second from "24.53it/s", "2.50s/it", "1.2k examples/s"; None for "?it/s"."""
    if not text:
        return None
    text = text.strip()
    m = _RATE_NUM.match(text)
    if m is None:
        return None
    value = float(m.group())
    rest = text[m.end() :]
    scale = _SCALE.get(rest[:1], 1) if rest else 1
    if scale != 1:
        value *= scale
        rest = rest[1:]
    if rest.startswith("s/") and not text.endswith("/s"):
        # tqdm shows the inverse ("s/it") for slow bars.
        return 1.0 / value if value else None
    return value if text.endswith("/s") else None


def _bar_match(segment: str) -> re.Match[str] | None:
    """The regex match of a tqdm bar at the start of a cleaned segment, if there is one."""
    head = segment[:_BAR_SCAN_CHARS]
    # Cheap test first: almost every log line fails it, and no bar does.
    if "%|" not in head and (" [" not in head or ("/s" not in head and "s/" not in head)):
        return None
    if "%" in head:
        m = _BAR_TOTAL.match(segment, 0, _BAR_SCAN_CHARS)
        if m is not None:
            return m
    m = _BAR_NOTOTAL.match(segment, 0, _BAR_SCAN_CHARS)
    return m if m is not None and m.group("rate") is not None else None


def _bar_progress(m: re.Match[str]) -> Progress:
    total = _count(m.group("total")) if m.re is _BAR_TOTAL else None
    n, desc, rate, elapsed, remaining = m.group("n", "desc", "rate", "el", "rem")
    return Progress.of_bar(_count(n), total, desc or "", rate, elapsed, remaining)


def parse_bar(segment: str) -> tuple[Progress, int] | None:
    """A tqdm bar at the start of a cleaned segment: the Progress and where the bar ends."""
    m = _bar_match(segment)
    return None if m is None else (_bar_progress(m), m.end())


# Digits as '0': two states of one bar differ in their numbers only, so they share this form.
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_DIGIT = re.compile(r"[0-9]")
_FIELDS = ("n", "total", "desc", "rate", "el", "rem")


def _form(text: str) -> bytes:
    # feed() decodes everything it is given, so the text holds no surrogate to fail on.
    return text.encode().translate(_DIGITS_AS_ZERO)


class BarForm:
    """The form of a parsed bar with a total: its text with digits as '0', and its fields' spans.

    The bar regexes treat every digit alike, so a text of the same form is a bar too, matched
    the same way: same spans, nothing after it. Another state of the bar is read by slicing at
    those spans, and an earlier redraw of the same bar (same description and total, which may
    hold digits) is told apart from anything else without the regexes.
    """

    __slots__ = ("_redraw", "_total", "described", "form", "head", "length", "plain_step", "spans")

    def __init__(self, bar_text: str, m: re.Match[str]) -> None:
        self.length = len(bar_text)
        self.form = _form(bar_text)
        # The text before the first digit: a quick no for text that is not such a bar.
        first_digit = _DIGIT.search(bar_text)
        self.head = bar_text[: first_digit.start()] if first_digit else bar_text
        self.spans = tuple(m.span(name) for name in _FIELDS)
        desc_end = m.end("desc")
        # Where the description holds no digit, the form alone compares it.
        self.described = desc_end > 0 and any(char.isdigit() for char in bar_text[:desc_end])
        # A step of bare digits (no "1.5k") in the form is one in every text of the form.
        self.plain_step = bar_text[m.start("n") : m.end("n")].isdigit()
        self._total = ("", 0)  # the last total read, as text and number
        self._redraw: _Redraw | None = None

    def progress(self, text: str) -> Progress | None:
        """The state a text starting with a bar of this form shows, if it does."""
        length = self.length
        if not text.startswith(self.head) or len(text) < length:
            return None
        if _form(text[:length]) != self.form:
            return None
        n, total, desc, rate, elapsed, remaining = self.spans
        step = text[n[0] : n[1]]
        total_text = text[total[0] : total[1]]
        if total_text != self._total[0]:
            self._total = (total_text, _count(total_text))
        return Progress.of_bar(
            int(step) if self.plain_step else _count(step),
            self._total[1],
            text[desc[0] : desc[1]] if desc[0] >= 0 else "",
            text[rate[0] : rate[1]] if rate[0] >= 0 else None,
            text[elapsed[0] : elapsed[1]],
            text[remaining[0] : remaining[1]] if remaining[0] >= 0 else None,
        )

    def step_of(self, text: str, total: str, total_at: int) -> int | None:
        """The step a text starting with a bar of this form and this total text shows, if it
        does (progress() without a Progress: the one reading a bulk reader needs per dict)."""
        length = self.length
        if (
            not text.startswith(self.head)
            or len(text) < length
            or not text.startswith(total, total_at)
            or _form(text[:length]) != self.form
        ):
            return None
        start, end = self.spans[0]
        return int(text[start:end]) if self.plain_step else _count(text[start:end])

    def total_of(self, text: str) -> tuple[str, int]:
        """The total's text in a bar of this form, and where it starts."""
        start, end = self.spans[1]
        return text[start:end], start

    def redraw(self, bar_text: str) -> _Redraw:
        """What an earlier redraw of this bar of this form is like (the last one is kept: one
        bar is redrawn over and over)."""
        known = self._redraw
        if known is None or not known.is_same_bar(bar_text):
            known = self._redraw = _Redraw(self, bar_text)
        return known


class _Redraw:
    """What an earlier state of one bar, drawn alone, is like: a segment of the bar's form
    (every character but the digits alike) with the same total and description."""

    __slots__ = ("description", "form", "total", "total_at")

    def __init__(self, form: BarForm, bar_text: str) -> None:
        self.form = form.form
        self.total_at, end = form.spans[1]
        self.total = bar_text[self.total_at : end]
        self.description = bar_text[: form.spans[2][1]] if form.described else None

    def fields(self) -> tuple[bytes, str, int, str | None]:
        """form, total, where the total starts, description (None: the form compares it)."""
        return self.form, self.total, self.total_at, self.description

    def is_same_bar(self, raw: str) -> bool:
        """Of a segment of this form: does it show the same total and description?"""
        return raw.startswith(self.total, self.total_at) and (
            self.description is None or raw.startswith(self.description)
        )


# What _segments makes of an empty segment: blank, no bar.
_BLANK: tuple[str, Progress | None, int, BarForm | None] = ("", None, 0, None)

_QUOTES = ("'", '"')
_NUMBER_MAX_CHARS = 64


def _number(raw: str) -> float | int | None:
    raw = raw.strip()
    if not raw or len(raw) > _NUMBER_MAX_CHARS:
        return None
    first = raw[0]
    if first == "'" or first == '"':
        # transformers 5 prints floats as quoted '.4g' strings: '5.947', 'nan', '5.866e-06'.
        if len(raw) < 2 or raw[-1] != first:
            return None
        try:
            return float(raw[1:-1])
        except ValueError:
            return None
    # isascii: str.isdigit() also accepts '²', which int() rejects.
    if raw.isascii() and (raw.isdigit() or (first in "+-" and raw[1:].isdigit())):
        return int(raw)
    try:
        return float(raw)
    except ValueError:
        return None


def parse_dict(text: str) -> tuple[list[str], dict[str, float | int]]:
    """All keys and the numeric values of a printed flat dict like "{'loss': '5.9', 'n': 3}"."""
    keys: list[str] = []
    values: dict[str, float | int] = {}
    for _quote, key, raw in _DICT_PAIR.findall(text):
        keys.append(key)
        if raw[:1] in _QUOTES:
            # Most values (transformers 5 quotes its floats); _number's first case, inlined.
            if len(raw) <= _NUMBER_MAX_CHARS:
                try:
                    number = float(raw[1:-1])
                except ValueError:
                    continue
                values[key] = number
            continue
        value = _number(raw)
        if value is not None:
            values[key] = value
    return keys, values


def _without_rank(text: str) -> tuple[str, int | None]:
    """A line without torchrun's "[rankN]: " prefix, and N."""
    if text.startswith("[rank"):
        m = _RANK_PREFIX.match(text)
        if m is not None:
            return text[m.end() :], int(m.group(1))
    return text, None


def _log_prefix(body: str) -> tuple[str | None, str | None, int | None, int]:
    """A logging prefix at the start of a line: level, logger, rank and where the message starts.

    axolotl's format, torch's glog one and logging.basicConfig's; (None, None, None, 0) if none.
    """
    first = body[:1]
    if first == "[" and body[1:2].isdigit():
        m = _AXOLOTL.match(body)
        if m is not None:
            rank = m.group("rank")
            return m.group("level"), m.group("logger"), None if rank is None else int(rank), m.end()
    if first and first in "[IWEF":
        m = _GLOG.match(body)
        if m is not None:
            return _GLOG_LEVELS[m.group("level")], m.group("logger"), None, m.end()
    if first and first in "DIWEC":
        m = _BASIC.match(body)
        if m is not None:
            return m.group("level"), m.group("logger"), None, m.end()
    return None, None, None, 0


def classify_line(text: str) -> tuple[str | None, str | None, int | None]:
    """The level, logger and rank a cleaned log line names (None where it names none)."""
    body, rank = _without_rank(text)
    level, logger, logged_rank, _ = _log_prefix(body)
    if logged_rank is not None:
        rank = logged_rank
    if level is None and "Warning: " in body and _PYWARN.match(body) is not None:
        level = "WARNING"
    return level, logger, rank


def _exception_line(body: str) -> bool:
    """Does a non-indented line look like the last line of a traceback?"""
    m = _EXC_LINE.fullmatch(body)
    if m is None:
        return False
    last = m.group("name").rsplit(".", 1)[-1]
    if not last[:1].isupper() or last.isupper():
        # "WARNING: x" or "wandb: x" are not exceptions.
        return False
    if m.group("colon"):
        msg = m.group("msg")
        return not msg or msg[0] == " "
    return not m.group("msg") and last.endswith(_EXC_BARE_SUFFIXES)


# ---------------------------------------------------------------------------------------------
# Tracebacks

_OPEN, _CLOSED, _MSG, _BOX = range(4)


class _Traceback:
    __slots__ = ("box", "box_lines", "error", "in_root_cause", "lines", "state")

    def __init__(self, first: str) -> None:
        self.lines: deque[str] = deque((first,), MAX_TRACEBACK_LINES)
        self.state = _OPEN
        self.error = ""
        # torchrun's ChildFailedError box: title, and the root cause's rank and exitcode.
        self.box: dict[str, str] = {}
        self.box_lines = 0
        self.in_root_cause = False


def _box_error(tb: _Traceback) -> str:
    """One line for torchrun's ChildFailedError box: which rank failed and how."""
    info = tb.box
    parts = [info[key] for key in ("rank", "exitcode") if key in info]
    detail = f" ({', '.join(parts)})" if parts else ""
    title = info.get("title", "")
    return f"{tb.error} {title}{detail}".rstrip() if title or detail else tb.error


# ---------------------------------------------------------------------------------------------
# The parser


class OutputParser:
    """Incremental parser: feed() raw bytes as they arrive, finish() at end of stream."""

    def __init__(self, logging_steps: int = 1, start_step: int = 0) -> None:
        self._logging_steps = max(1, int(logging_steps))
        self._step = int(start_step)
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        # The unterminated segment (text after the last \r or \n), in pieces.
        self._parts: list[str] = []
        self._parts_len = 0
        # Bar text of the pending segment that was already reported live.
        self._live_bar: str | None = None
        # The physical line so far: its last non-bar text and, if the last segment was a
        # bar, that bar.
        self._line_text: str | None = None
        self._line_bar: str | None = None
        # The trainer's bar: the first bar without description and with a total.
        self._trainer_total: int | None = None
        self._trainer_step: int | None = None
        self._tracebacks: dict[int | None, _Traceback] = {}
        # The form of the last bar with a total that the regexes read.
        self._bar_form: BarForm | None = None

    # -- public API ----------------------------------------------------------------------------

    def feed(self, data: bytes) -> list[Event]:
        out: list[Event] = []
        try:
            text = self.decode(data)
            if text:
                self._consume(text, out)
        except Exception as exc:  # never let a bug here kill the supervisor
            self._recover(exc, out)
        return out

    def decode(self, data: bytes) -> str:
        """Raw bytes as text, a character split across reads kept for the next (feed() does
        this; a caller that splits the text itself decodes here and feeds feed_text)."""
        # A str is accepted too, so a careless caller still gets events, not an error.
        raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
        return self._decoder.decode(raw)

    def feed_text(self, text: str) -> list[Event]:
        """feed() for text that decode() gave."""
        out: list[Event] = []
        try:
            if text:
                self._consume(text, out)
        except Exception as exc:
            self._recover(exc, out)
        return out

    def finish(self) -> list[Event]:
        out: list[Event] = []
        try:
            text = self._decoder.decode(b"", final=True)
            if text:
                self._consume(text, out)
            if self._parts or self._line_text is not None or self._line_bar is not None:
                self._segment(self._take_pending(), out)
                self._end_line(out)
            for rank, tb in list(self._tracebacks.items()):
                if tb.state != _CLOSED:
                    if tb.state == _OPEN:
                        # Cut off before its exception line: the last line is all we have.
                        tb.error = tb.lines[-1].strip()
                    self._emit_traceback(tb, rank, out)
            self._tracebacks.clear()
        except Exception as exc:
            self._recover(exc, out)
        self._decoder.reset()
        return out

    # -- for a reader that skips lines (core.output.chunk_reader) ---------------------------------

    @property
    def at_line_start(self) -> bool:
        """Nothing of a line is pending: a whole line may be fed, or skipped, next."""
        return not self._parts and self._line_text is None and self._line_bar is None

    @property
    def traceback_ranks(self) -> frozenset[int | None]:
        """The ranks whose traceback is still being read: their lines matter to it."""
        return frozenset(self._tracebacks)

    def read_bar(self, raw: str) -> tuple[Progress, BarForm | None] | None:
        """The bar a raw segment starts with (its state, and its form when it has a total), as
        a line through feed() would read it; None when it starts with none."""
        _seg, progress, _end, form = self._classify(raw)
        return None if progress is None else (progress, form)

    def is_trainer_bar(self, progress: Progress) -> bool:
        """Is this the trainer's bar (no description, the trainer's total)?"""
        return (
            not progress.description
            and progress.total is not None
            and progress.total == self._trainer_total
        )

    def bar_read(self, progress: Progress, out: list[Event]) -> None:
        """A bar state read on a skipped line: what feed() would have done with it."""
        self._emit_progress(progress, out)

    def trainer_step_read(self, step: int) -> None:
        """The trainer's bar showed `step` (read by its form, no Progress made)."""
        self._trainer_step = step

    def next_train_step(self) -> int:
        """The step of a training dict printed now (see _dict), and the parser moved past it."""
        step = self._step + self._logging_steps
        if self._trainer_step is not None and self._trainer_step > step:
            step = self._trainer_step
        self._step = step
        return step

    @property
    def trainer_total(self) -> int | None:
        """Total of the trainer's bar (the first bar with no description and a total).

        The eval bar has no description either; comparing its total with this one tells the
        two apart.
        """
        return self._trainer_total

    # -- stream splitting ----------------------------------------------------------------------

    def _consume(self, text: str, out: list[Event]) -> None:
        pieces = text.split("\n")
        tail = pieces.pop()
        for piece in pieces:
            if self._parts:
                self._parts.append(piece)
                piece = self._take_pending()
            if "\r" in piece:
                self._segments(piece, out)
            else:
                self._segment(piece, out)
            self._end_line(out)
        if not tail:
            return
        if "\r" in tail:
            done, _, tail = tail.rpartition("\r")
            if self._parts:
                self._parts.append(done)
                done = self._take_pending()
            self._segments(done, out)
        if tail:
            self._parts.append(tail)
            self._parts_len += len(tail)
            if self._parts_len > MAX_LINE_CHARS:
                # Flush whole MAX_LINE_CHARS pieces, the same cut _segment makes when the
                # long line arrives in one piece.
                pending = self._take_pending()
                while len(pending) > MAX_LINE_CHARS:
                    self._segment(pending[:MAX_LINE_CHARS], out)
                    self._end_line(out)
                    pending = pending[MAX_LINE_CHARS:]
                self._parts.append(pending)
                self._parts_len = len(pending)
            elif tail.rstrip()[-1:] == "]":
                self._report_live(out)

    def _take_pending(self) -> str:
        text = "".join(self._parts)
        self._parts.clear()
        self._parts_len = 0
        return text

    def _report_live(self, out: list[Event]) -> None:
        """Report a pending segment that already is a whole bar, before its \\r arrives."""
        if self._parts_len > _BAR_SCAN_CHARS * 4:
            return
        pending = "".join(self._parts)
        self._parts[:] = [pending]
        seg = clean_text(pending)
        if not seg.endswith("]"):
            return
        parsed = parse_bar(seg)
        if parsed is None or parsed[1] != len(seg):
            return
        if seg != self._live_bar:
            self._live_bar = seg
            self._emit_progress(parsed[0], out)

    # -- segments and lines --------------------------------------------------------------------

    def _segments(self, line: str, out: list[Event]) -> None:
        """A line's complete segments (\\r-separated), in order.

        A bar redraw that a later redraw of the same bar in the same feed replaces is skipped
        unparsed: its Progress would collapse into the later one (only text segments, which
        emit nothing until the line ends, may come between) and its text is not the line's
        last. Most of a flood is such redraws.
        """
        raws = line.split("\r")
        forms: list[bytes] | None = None  # each segment's form, once a redraw may be among them
        # (cleaned segment, its bar's state, its bar's end); end -1: a raw segment too long.
        kept: list[tuple[str, Progress | None, int]] = []
        later: _Redraw | None = None  # the bar that the segments after this one redraw
        first_kept = False  # is the first segment processed (it may be the live bar)?
        index = len(raws) - 1
        while index >= 0:
            raw = raws[index]
            first_kept = index == 0
            index -= 1
            if len(raw) > MAX_LINE_CHARS:
                kept.append((raw, None, -1))
                later = None  # it is cut into lines, which end any collapse
                continue
            seg, progress, end, form = self._classify(raw) if raw else _BLANK
            if seg:
                kept.append((seg, progress, end))
            else:
                first_kept = False  # blank (a cleared bar): nothing to process but the below
            if progress is not None:
                # A bar without a total has no form: its earlier redraws are parsed.
                later = None if form is None else form.redraw(seg[:end])
            if later is None or index < 0:
                continue
            # Skip the run of redraws of that bar just before this segment.
            if forms is None:
                forms = _form(line).split(b"\r")
            shape, total, total_at, description = later.fields()
            while (
                index >= 0
                and forms[index] == shape
                and raws[index].startswith(total, total_at)
                and (description is None or raws[index].startswith(description))
            ):
                index -= 1
            if index < 0:
                first_kept = False
        # The first segment, completed now, may be the bar already reported live: it is
        # compared with that bar if it is processed, and the report is moot otherwise.
        if not first_kept:
            self._live_bar = None
        for seg, progress, end in reversed(kept):
            if end < 0:
                self._segment(seg, out)
            else:
                self._classified_segment(seg, progress, end, out)

    def _segment(self, raw: str, out: list[Event]) -> None:
        """A segment ended by \\r or \\n: a bar redraw, text, or blank."""
        while len(raw) > MAX_LINE_CHARS:
            self._segment(raw[:MAX_LINE_CHARS], out)
            self._end_line(out)
            raw = raw[MAX_LINE_CHARS:]
        seg, progress, end, _ = self._classify(raw)
        self._classified_segment(seg, progress, end, out)

    def _classify(self, raw: str) -> tuple[str, Progress | None, int, BarForm | None]:
        """A segment cleaned ("" when blank) and the bar it starts with: its state, its end and
        its form (None for a bar without a total).

        A bar of the last form seen is read by slicing; another one by the regexes, and its
        form is remembered (tqdm redraws one bar over and over).
        """
        seg = clean_text(raw)
        if not seg or seg.isspace():
            return "", None, 0, None
        form = self._bar_form
        if form is not None:
            progress = form.progress(seg)
            if progress is not None:
                return seg, progress, form.length, form
        m = _bar_match(seg)
        if m is None:
            return seg, None, 0, None
        end = m.end()
        if m.re is not _BAR_TOTAL:
            return seg, _bar_progress(m), end, None
        form = self._bar_form = BarForm(seg[:end], m)
        return seg, _bar_progress(m), end, form

    def _classified_segment(
        self, seg: str, progress: Progress | None, end: int, out: list[Event]
    ) -> None:
        live, self._live_bar = self._live_bar, None
        if not seg:
            return
        if progress is not None:
            bar_text = seg[:end]
            if bar_text != live:
                self._emit_progress(progress, out)
            rest = seg[end:]
            if rest.strip():
                # Text printed after the bar without clearing it (e.g. a log line).
                self._line_text = rest.lstrip()
                self._line_bar = None
            else:
                self._line_bar = bar_text
            return
        self._line_text = seg
        self._line_bar = None

    def _end_line(self, out: list[Event]) -> None:
        text, bar = self._line_text, self._line_bar
        if text is not None:
            self._line_text = None
            self._text(text, out)
        if bar is not None:
            self._line_bar = None
            out.append(LogLine(bar, None, None, None))

    def _emit_progress(self, progress: Progress, out: list[Event]) -> None:
        if not progress.description and progress.total is not None:
            if self._trainer_total is None:
                self._trainer_total = progress.total
            if progress.total == self._trainer_total:
                self._trainer_step = progress.step
        if out:
            last = out[-1]
            # Collapse a redraw flood to the latest state of each bar.
            if (
                type(last) is Progress
                and last.description == progress.description
                and last.total == progress.total
            ):
                out[-1] = progress
                return
        out.append(progress)

    # -- one line of text ----------------------------------------------------------------------

    def _text(self, text: str, out: list[Event]) -> None:
        body, _ = _without_rank(text)
        # Only a dict or a save line says more than the line itself; the logging prefix before
        # them is matched only when one may follow (each of the save lines has SAVE_LINE_MARK).
        msg = body
        if "{" in body or SAVE_LINE_MARK in body:
            msg = body[_log_prefix(body)[3] :]
        record = self._dict(msg) if msg[:1] == "{" else None
        line = LogLine.of_text(text, metrics=record is not None)
        out.append(line)

        if self._tracebacks or body.startswith(TRACEBACK_HEAD):
            self._traceback_line(body, line.rank, out)

        if record is not None:
            out.append(record)
            return
        first = msg[:1]
        if first == "S":
            if msg.startswith(_CKPT_PREFIX):
                path = msg[len(_CKPT_PREFIX) :].strip()
                m = _CHECKPOINT_STEP.search(path)
                out.append(CheckpointSaved(path, int(m.group(1)) if m else None))
        elif first == "M":
            if msg.startswith(_MODEL_SAVED_PREFIX):
                out.append(ModelSaved(msg[len(_MODEL_SAVED_PREFIX) :].strip()))
        elif first == "T" and msg.startswith(_COMPLETED_PREFIX):
            path = msg[len(_COMPLETED_PREFIX) :].strip()
            out.append(TrainingCompleted(path[:-1] if path.endswith(".") else path))

    def _dict(self, msg: str) -> Metrics | EvalMetrics | Summary | None:
        """The event a printed dict gives, if any (a training dict advances the step)."""
        msg = msg.rstrip()
        if not msg.endswith("}") or len(msg) > _DICT_MAX_CHARS:
            return None
        keys, values = parse_dict(msg)
        if not keys:
            return None
        if "train_runtime" in keys:
            return Summary(values)
        if "eval_" in msg and any(key.startswith("eval_") for key in keys):
            return EvalMetrics(self._step, values)
        if "loss" not in keys:
            return None
        # The bar shown when the dict is printed is at most the true step (tqdm throttles
        # redraws), and steps advance by logging_steps: the larger is the best guess.
        return Metrics(self.next_train_step(), values)

    # -- tracebacks ----------------------------------------------------------------------------

    def _traceback_line(self, body: str, rank: int | None, out: list[Event]) -> None:
        tb = self._tracebacks.get(rank)
        if body.startswith(TRACEBACK_HEAD):
            if tb is None or tb.state == _CLOSED:
                if tb is None and len(self._tracebacks) >= _MAX_OPEN_TRACEBACKS:
                    del self._tracebacks[next(iter(self._tracebacks))]
                self._tracebacks[rank] = _Traceback(body)
            elif tb.state == _OPEN:
                # After a chain marker, or a second process's interleaved traceback.
                tb.lines.append(body)
            else:
                self._emit_traceback(tb, rank, out)
                self._tracebacks[rank] = _Traceback(body)
            return
        if tb is None:
            return
        state = tb.state
        if state == _OPEN:
            if body[:1] in " \t" or body.startswith(_TB_CHAIN):
                tb.lines.append(body)
            elif _exception_line(body):
                tb.lines.append(body)
                tb.error = body.strip()
                if body.rstrip().endswith(":"):
                    # The message starts on the next line (torchrun's ChildFailedError box).
                    tb.state = _MSG
                else:
                    self._emit_traceback(tb, rank, out)
                    tb.state = _CLOSED
            # Anything else is another process's output interleaved: a LogLine only.
        elif state == _CLOSED:
            if body.startswith(_TB_CHAIN):
                tb.state = _OPEN
                tb.lines.append(body)
            else:
                del self._tracebacks[rank]
        elif state == _MSG:
            if body.startswith("===") and not body.strip("="):
                tb.state = _BOX
                tb.lines.append(body)
                tb.box_lines = 1
            else:
                # A plain message that happened to end with ':'; this line is not part of it.
                self._emit_traceback(tb, rank, out)
                tb.state = _CLOSED
                self._traceback_line(body, rank, out)
        else:
            self._box_line(tb, body, rank, out)

    def _box_line(self, tb: _Traceback, body: str, rank: int | None, out: list[Event]) -> None:
        tb.lines.append(body)
        tb.box_lines += 1
        stripped = body.strip()
        if tb.box_lines == 2:
            tb.box["title"] = stripped
        elif stripped.startswith("Root Cause"):
            tb.in_root_cause = True
        elif tb.in_root_cause:
            key, sep, value = stripped.partition(":")
            key = key.strip()
            if sep and key in ("rank", "exitcode") and key not in tb.box:
                value = _PID.sub("", value.strip())
                tb.box[key] = f"{key} {value}"
        if (body.startswith("===") and not stripped.strip("=")) or tb.box_lines > _BOX_MAX_LINES:
            self._emit_traceback(tb, rank, out)
            del self._tracebacks[rank]

    def _emit_traceback(self, tb: _Traceback, rank: int | None, out: list[Event]) -> None:
        error = _box_error(tb) if tb.state == _BOX else tb.error
        out.append(TracebackEvent(tuple(tb.lines), error, rank))

    # -- robustness ----------------------------------------------------------------------------

    def _recover(self, exc: Exception, out: list[Event]) -> None:
        """Drop the partial state that may be inconsistent and say so in the log."""
        self._parts.clear()
        self._parts_len = 0
        self._live_bar = None
        self._line_text = None
        self._line_bar = None
        self._tracebacks.clear()
        out.append(parser_error(exc))


def parser_error(exc: Exception) -> LogLine:
    """The log line that reports a bug in the parser (it never raises instead)."""
    return LogLine(f"{PARSER_ERROR_PREFIX}{type(exc).__name__}: {exc}", "ERROR", None, None)
