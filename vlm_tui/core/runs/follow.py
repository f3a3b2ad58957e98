"""Follow a run folder as its supervisor writes it: new output events and the latest status.

Followers only read. `RunFollower` parses train.log with the same parser the supervisor uses,
so the headless front-end prints every line and progress redraw as it happens, with the same
steps and losses the supervisor records. `RecordFollower` reads what the supervisor already
parsed (metrics.jsonl, status.json) and only splits the log into lines: the TUI's way, so a
flood of output costs the screen little.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from vlm_tui.core.output.output_parser import Event
from vlm_tui.core.output.run_state import RunState, parser_for_run
from vlm_tui.core.records.command_file import read_command
from vlm_tui.core.records.folder import TERMINAL_STATES, RunPaths
from vlm_tui.core.records.metrics_file import decode_lines
from vlm_tui.core.records.status_file import read_status

READ_CHUNK = 1 << 20


class RunFollower:
    def __init__(self, paths: RunPaths) -> None:
        self.paths = paths
        self.parser = parser_for_run(read_command(paths) or {})
        self.state = RunState()
        self.status: dict[str, Any] = read_status(paths)
        self.ended = False
        self._log: BinaryIO | None = None

    def poll(self, max_bytes: int = 8 * READ_CHUNK) -> list[Event]:
        """Events from output written since the last poll (at most `max_bytes` of it)."""
        if self.ended:
            return []
        # Status first: once it says the run ended, everything the training wrote is in the log.
        self.status = read_status(self.paths) or self.status
        finished = self.status.get("state") in TERMINAL_STATES
        events: list[Event] = []
        drained = self._read_into(events, max_bytes)
        if finished and drained:
            events.extend(self.parser.finish())
            self.ended = True
            self.close()
        self.state.absorb(events)
        return events

    def _read_into(self, events: list[Event], max_bytes: int) -> bool:
        """Feed new log bytes to the parser; True when the log was read to its end."""
        if self._log is None:
            try:
                self._log = self.paths.log.open("rb")
            except FileNotFoundError:
                return True
        budget = max_bytes
        while budget > 0:
            chunk = self._log.read(min(READ_CHUNK, budget))
            if not chunk:
                return True
            events.extend(self.parser.feed(chunk))
            budget -= len(chunk)
        return False

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


# Bytes of an unfinished line kept at most: a tqdm bar redraws without a newline for as long
# as an epoch lasts, so only its last redraw is kept; a line longer than this is shown in parts.
MAX_PARTIAL_LINE = 64 * 1024


@dataclass
class RecordBatch:
    """What a run folder gained since the last poll."""

    lines: list[str]  # raw lines of train.log; tqdm's carriage-return redraws left in
    metrics: list[dict[str, Any]]  # new metrics.jsonl records
    status: dict[str, Any]
    ended: bool

    @property
    def empty(self) -> bool:
        return not self.lines and not self.metrics


class RecordFollower:
    """Follows what the supervisor recorded, parsing nothing but JSON.

    The supervisor already parses train.log into metrics.jsonl and status.json; a screen that
    reads those and only splits the log into lines does a fraction of the work, which keeps a
    flood of output from competing with drawing.
    """

    def __init__(self, paths: RunPaths) -> None:
        self.paths = paths
        self.status: dict[str, Any] = {}
        self.ended = False
        self._log: BinaryIO | None = None
        self._metrics: BinaryIO | None = None
        self._partial_line = b""
        self._partial_record = b""

    def poll(self, max_bytes: int = 8 * READ_CHUNK) -> RecordBatch:
        """New lines (from at most `max_bytes` of log), new metric records, the status now."""
        if self.ended:
            return RecordBatch([], [], self.status, True)
        # Status first: once it says the run ended, the log and metrics are complete.
        self.status = read_status(self.paths) or self.status
        finished = self.status.get("state") in TERMINAL_STATES
        metrics = self._read_records()
        lines, drained = self._read_lines(max_bytes)
        if finished and drained:
            if self._partial_line:
                lines.append(self._partial_line.decode("utf-8", "replace"))
                self._partial_line = b""
            self.ended = True
            self.close()
        return RecordBatch(lines, metrics, self.status, self.ended)

    def _read_lines(self, max_bytes: int) -> tuple[list[str], bool]:
        if self._log is None:
            self._log = _open(self.paths.log)
            if self._log is None:
                return [], True
        chunk = self._log.read(max_bytes)
        if not chunk:
            return [], True
        *complete, rest = (self._partial_line + chunk).split(b"\n")
        if len(rest) > MAX_PARTIAL_LINE:
            redraw = rest.rfind(b"\r")
            rest = rest[redraw:] if redraw > 0 else rest
            while len(rest) > MAX_PARTIAL_LINE:
                complete.append(rest[:MAX_PARTIAL_LINE])
                rest = rest[MAX_PARTIAL_LINE:]
        self._partial_line = rest
        lines = [raw.decode("utf-8", "replace") for raw in complete]
        return lines, len(chunk) < max_bytes

    def _read_records(self) -> list[dict[str, Any]]:
        if self._metrics is None:
            self._metrics = _open(self.paths.metrics)
            if self._metrics is None:
                return []
        data = self._partial_record + self._metrics.read()
        *complete, self._partial_record = data.split(b"\n")
        return decode_lines(complete)  # a torn or foreign line is passed over

    def close(self) -> None:
        for stream in (self._log, self._metrics):
            if stream is not None:
                stream.close()
        self._log = self._metrics = None


def _open(path: Path) -> BinaryIO | None:
    try:
        return path.open("rb")
    except FileNotFoundError:
        return None
