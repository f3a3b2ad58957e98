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


@dataclass(frozen=True, slots=True)
class LogLine:
    """A complete physical line as a log view shows it (ANSI codes stripped)."""

    text: str
    level: str | None
    logger: str | None
    rank: int | None


@dataclass(frozen=True, slots=True)
class Progress:
    """One state of a tqdm bar."""

    step: int
    total: int | None
    steps_per_second: float | None
    elapsed_s: float | None
    remaining_s: float | None
    description: str


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

_TB_HEAD = "Traceback (most recent call last):"
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


def parse_bar(segment: str) -> tuple[Progress, int] | None:
    """A tqdm bar at the start of a cleaned segment: the Progress and where the bar ends."""
    head = segment[:_BAR_SCAN_CHARS]
    # Cheap test first: almost every log line fails it, and no bar does.
    if "%|" not in head and (" [" not in head or ("/s" not in head and "s/" not in head)):
        return None
    m = None
    if "%" in head:
        m = _BAR_TOTAL.match(segment, 0, _BAR_SCAN_CHARS)
    if m is None:
        m = _BAR_NOTOTAL.match(segment, 0, _BAR_SCAN_CHARS)
        if m is None or m.group("rate") is None:
            return None
        total = None
    else:
        total = _count(m.group("total"))
    progress = Progress(
        step=_count(m.group("n")),
        total=total,
        steps_per_second=parse_rate(m.group("rate")),
        elapsed_s=parse_interval(m.group("el")),
        remaining_s=parse_interval(m.group("rem")),
        description=m.group("desc") or "",
    )
    return progress, m.end()


def _number(raw: str) -> float | int | None:
    raw = raw.strip()
    if not raw or len(raw) > 64:
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
        value = _number(raw)
        if value is not None:
            values[key] = value
    return keys, values


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
        self._bar_cache: tuple[str, tuple[Progress, int]] | None = None

    # -- public API ----------------------------------------------------------------------------

    def feed(self, data: bytes) -> list[Event]:
        out: list[Event] = []
        try:
            # A str is accepted too, so a careless caller still gets events, not an error.
            text = data if isinstance(data, str) else self._decoder.decode(bytes(data))
            if text:
                self._consume(text, out)
        except Exception as exc:  # never let a bug here kill the supervisor
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
                for seg in piece.split("\r"):
                    self._segment(seg, out)
            else:
                self._segment(piece, out)
            self._end_line(out)
        if not tail:
            return
        if "\r" in tail:
            segs = tail.split("\r")
            tail = segs.pop()
            for seg in segs:
                if self._parts:
                    self._parts.append(seg)
                    seg = self._take_pending()
                self._segment(seg, out)
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

    def _segment(self, raw: str, out: list[Event]) -> None:
        """A segment ended by \\r or \\n: a bar redraw, text, or blank."""
        while len(raw) > MAX_LINE_CHARS:
            self._segment(raw[:MAX_LINE_CHARS], out)
            self._end_line(out)
            raw = raw[MAX_LINE_CHARS:]
        live, self._live_bar = self._live_bar, None
        seg = clean_text(raw)
        if not seg or seg.isspace():
            return
        cache = self._bar_cache
        if cache is not None and cache[0] == seg:
            # tqdm redraws the same bar after each tqdm.write(): skip the regexes.
            parsed: tuple[Progress, int] | None = cache[1]
        else:
            parsed = parse_bar(seg)
            if parsed is not None:
                self._bar_cache = (seg, parsed)
        if parsed is not None:
            progress, end = parsed
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
        rank: int | None = None
        body = text
        if text.startswith("[rank"):
            m = _RANK_PREFIX.match(text)
            if m is not None:
                rank = int(m.group(1))
                body = text[m.end() :]
        level: str | None = None
        logger: str | None = None
        msg = body
        first = body[:1]
        if first == "[" and body[1:2].isdigit():
            m = _AXOLOTL.match(body)
            if m is not None:
                level, logger = m.group("level"), m.group("logger")
                if m.group("rank") is not None:
                    rank = int(m.group("rank"))
                msg = body[m.end() :]
        if level is None and first in "[IWEF" and first:
            m = _GLOG.match(body)
            if m is not None:
                level, logger = _GLOG_LEVELS[m.group("level")], m.group("logger")
                msg = body[m.end() :]
        if level is None and first in "DIWEC" and first:
            m = _BASIC.match(body)
            if m is not None:
                level, logger = m.group("level"), m.group("logger")
                msg = body[m.end() :]
        if level is None and "Warning: " in body and _PYWARN.match(body) is not None:
            level = "WARNING"
        out.append(LogLine(text, level, logger, rank))

        if self._tracebacks or body.startswith(_TB_HEAD):
            self._traceback_line(body, rank, out)

        first = msg[:1]
        if first == "{":
            self._dict(msg, out)
        elif first == "S":
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

    def _dict(self, msg: str, out: list[Event]) -> None:
        msg = msg.rstrip()
        if not msg.endswith("}") or len(msg) > _DICT_MAX_CHARS:
            return
        keys, values = parse_dict(msg)
        if not keys:
            return
        if "train_runtime" in keys:
            out.append(Summary(values))
        elif any(key.startswith("eval_") for key in keys):
            out.append(EvalMetrics(self._step, values))
        elif "loss" in keys:
            # The bar shown when the dict is printed is at most the true step (tqdm throttles
            # redraws), and steps advance by logging_steps: the larger is the best guess.
            step = self._step + self._logging_steps
            if self._trainer_step is not None and self._trainer_step > step:
                step = self._trainer_step
            self._step = step
            out.append(Metrics(step, values))

    # -- tracebacks ----------------------------------------------------------------------------

    def _traceback_line(self, body: str, rank: int | None, out: list[Event]) -> None:
        tb = self._tracebacks.get(rank)
        if body.startswith(_TB_HEAD):
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
        out.append(
            LogLine(f"{PARSER_ERROR_PREFIX}{type(exc).__name__}: {exc}", "ERROR", None, None)
        )
