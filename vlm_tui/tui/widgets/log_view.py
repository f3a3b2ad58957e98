"""The training log pane: a tail of the run's output with a live filter.

Training can print tens of thousands of lines a second (progress bars, per-rank warnings), and
the pane must never stall the event loop while it does. So `add_lines` only sanitises and
buffers; a timer hands the buffer to Textual's `Log` in one `write_lines` call every
`FLUSH_SECONDS` (one call per line stalls the loop for hundreds of milliseconds per 20k lines),
and a flood larger than a flush may write is cut to its tail with a one-line notice. Memory is
bounded however much arrives: a fixed-size history (which the filter searches), a `Log` capped
at `SHOWN_LINES`, and a pending buffer no longer than the history. The complete output is on
disk, so nothing here has to keep everything.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Sequence
from itertools import islice
from typing import ClassVar

from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Input, Log

SHOWN_LINES = 5_000
HISTORY_LINES = 50_000
FLUSH_SECONDS = 0.1
# Lines written per flush at most (20k lines/s): more than anyone reads, and writing a flood's
# every line costs the `Log` ~5 ms per 1,000 on the UI thread. The rest are announced as not
# shown, and stay in the history for the filter and in train.log.
FLUSH_MAX_LINES = 2_000
FULL_LOG_NAME = "train.log"
FILTER_PLACEHOLDER = "filter the log (Esc clears)"

# Escape sequences first, so colour codes vanish whole instead of leaving "[31m" behind; then
# every control character but tab, plus the Unicode line separators, because `Log` splits on
# all of them (str.splitlines) and would turn one line into several.
_UNPRINTABLE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI: colours, cursor moves
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC: titles, hyperlinks
    r"|[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]"
)


def sanitise_line(line: str) -> str:
    """Make `line` safe to show as exactly one line of the `Log`.

    A carriage return redraws a terminal line (progress bars), so only the text after the last
    one that is followed by something is kept: what a terminal would end up showing. An empty
    result becomes one space, because `Log.write_lines` silently drops empty strings.
    """
    if line.isprintable():
        # Fast path for the common case, a C-speed scan instead of a regex substitution.
        return line or " "
    if "\r" in line:
        redraws = [part for part in line.split("\r") if part]
        line = redraws[-1] if redraws else ""
    return _UNPRINTABLE.sub("", line) or " "


class FilterInput(Input):
    """The filter box; Escape asks the log pane to clear and close it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss", "Clear filter", show=False),
    ]

    class Dismissed(Message):
        """Escape was pressed in the filter box."""

    def action_dismiss(self) -> None:
        self.post_message(self.Dismissed())


class LogView(Vertical):
    """A bounded, filterable tail of the training output that keeps up with floods."""

    DEFAULT_CSS = """
    LogView {
        height: 1fr;
    }
    LogView > Log {
        height: 1fr;
    }
    LogView > #log-filter {
        display: none;
    }
    LogView.-filtering > #log-filter {
        display: block;
    }
    """

    def __init__(
        self,
        *,
        shown_lines: int = SHOWN_LINES,
        history_lines: int = HISTORY_LINES,
        full_log_name: str = FULL_LOG_NAME,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        if shown_lines < 2 or history_lines < shown_lines:
            raise ValueError("need 2 <= shown_lines <= history_lines")
        self._shown_lines = shown_lines
        self._full_log_name = full_log_name
        self._history: deque[str] = deque(maxlen=history_lines)
        self._pending: deque[str] = deque(maxlen=history_lines)
        self._pending_dropped = 0  # lines pushed out of a full pending buffer before a flush
        self._filter = ""  # lower-cased; empty means no filter
        self._lines_received = 0
        self._lines_written = 0
        self._lines_not_shown = 0
        self._log = Log(max_lines=shown_lines, id="log")
        self._filter_input = FilterInput(placeholder=FILTER_PLACEHOLDER, id="log-filter")

    def compose(self) -> ComposeResult:
        yield self._log
        yield self._filter_input

    def on_mount(self) -> None:
        self.set_interval(FLUSH_SECONDS, self.flush_now)

    def on_resize(self, event: events.Resize) -> None:
        # A pane that shrinks (the nodes table above it grew) leaves `Log` short of its end,
        # and it only auto-scrolls from the end: a following log would stop following.
        if self.follow:
            self.call_after_refresh(
                self._log.scroll_end, animate=False, immediate=True, x_axis=False
            )

    @property
    def lines_received(self) -> int:
        """Lines passed to `add_lines` so far."""
        return self._lines_received

    @property
    def lines_written(self) -> int:
        """Log lines handed to the `Log` widget so far (skipped-lines notices not counted)."""
        return self._lines_written

    @property
    def lines_not_shown(self) -> int:
        """Lines announced as skipped by notices so far."""
        return self._lines_not_shown

    def history(self) -> list[str]:
        """The lines kept for the filter, oldest first (sanitised, at most HISTORY_LINES)."""
        return list(self._history)

    @property
    def filter_text(self) -> str:
        """The active filter (lower-cased), or an empty string when unfiltered."""
        return self._filter

    @property
    def follow(self) -> bool:
        """Whether the log keeps scrolling to the newest line."""
        return self._log.auto_scroll

    @follow.setter
    def follow(self, value: bool) -> None:
        self._log.auto_scroll = value
        if value and self.is_mounted:
            # `Log` only auto-scrolls when already at the end, so catch up explicitly.
            self._log.scroll_end(animate=False, immediate=True, x_axis=False)

    def toggle_follow(self) -> None:
        """Switch between following new output and staying where the reader is."""
        self.follow = not self.follow

    def add_lines(self, lines: Sequence[str]) -> None:
        """Queue output lines for the next flush; cheap enough to call for every chunk read."""
        if not lines:
            return
        clean = [sanitise_line(line) for line in lines]
        self._lines_received += len(clean)
        self._history.extend(clean)
        pending = self._pending
        assert pending.maxlen is not None
        overflow = len(pending) + len(clean) - pending.maxlen
        if overflow > 0:
            self._pending_dropped += overflow
        pending.extend(clean)

    def flush_now(self) -> None:
        """Write everything pending to the `Log` in one call (the timer does this each tick)."""
        if not self.is_mounted or not (self._pending or self._pending_dropped):
            return
        pending, skipped = self._pending, self._pending_dropped
        self._pending = deque(maxlen=pending.maxlen)
        self._pending_dropped = 0
        if self._filter:
            needle = self._filter
            lines = [line for line in pending if needle in line.lower()]
        else:
            lines = list(pending)
        self._write(lines, skipped, FLUSH_MAX_LINES)

    def open_filter(self) -> None:
        """Show the filter box and focus it."""
        self.add_class("-filtering")
        self._filter_input.focus()

    def close_filter(self) -> None:
        """Clear the filter, hide its box and show the unfiltered tail again."""
        self.remove_class("-filtering")
        self._filter_input.value = ""
        self._set_filter("")
        self._log.focus()

    @on(Input.Changed, "#log-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._set_filter(event.value)

    @on(FilterInput.Dismissed)
    def _filter_dismissed(self, event: FilterInput.Dismissed) -> None:
        event.stop()
        self.close_filter()

    def _set_filter(self, text: str) -> None:
        needle = text.lower()
        if needle != self._filter:
            self._filter = needle
            self._rebuild()

    def _rebuild(self) -> None:
        """Refill the `Log` from the history under the current filter."""
        # Pending lines are already in the history, so writing them later would repeat them.
        self._pending.clear()
        self._pending_dropped = 0
        if not self.is_mounted:
            return
        self._log.clear()
        if self._filter:
            needle = self._filter
            self._write([line for line in self._history if needle in line.lower()], 0)
        else:
            start = max(len(self._history) - self._shown_lines, 0)
            tail = list(islice(self._history, start, None))
            self._write(tail, self._lines_received - len(tail))
        self._log.refresh()

    def _write(self, lines: list[str], skipped: int, most: int | None = None) -> None:
        """Hand `lines` to the `Log` in one call, cut to its tail with a notice if too many."""
        limit = self._shown_lines if most is None else min(most, self._shown_lines)
        # The notice takes a row of the Log, so with one the tail must leave room for it.
        if len(lines) > limit or (skipped and len(lines) >= limit):
            keep = limit - 1
            skipped += len(lines) - keep
            lines = lines[-keep:]
        written = len(lines)
        if skipped:
            self._lines_not_shown += skipped
            notice = f"… {skipped:,} lines not shown here (all are in {self._full_log_name})"
            lines.insert(0, notice)
        if not lines:
            return
        log = self._log
        before = len(log.lines)
        log.write_lines(lines)
        self._lines_written += written
        pruned = before + len(lines) - len(log.lines)
        if pruned > 0 and not log.auto_scroll:
            # Lines dropped off the top shift the content up; move the view with it so a
            # reader who stopped following keeps looking at the same lines.
            log.scroll_to(y=max(log.scroll_y - pruned, 0), animate=False, immediate=True)
