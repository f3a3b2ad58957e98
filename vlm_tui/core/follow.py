"""Follow a run folder as its supervisor writes it: new output events and the latest status.

A follower only reads. It parses train.log with the same parser the supervisor uses, so a
front-end sees every line and progress redraw as it happens, and the same steps and losses the
supervisor records.
"""

from __future__ import annotations

from typing import Any, BinaryIO

from vlm_tui.core.output_parser import Event
from vlm_tui.core.run_record import TERMINAL_STATES, RunPaths, read_json
from vlm_tui.core.run_state import RunState, parser_for_run

READ_CHUNK = 1 << 20


class RunFollower:
    def __init__(self, paths: RunPaths) -> None:
        self.paths = paths
        command = read_json(paths.command) or {}
        self.parser = parser_for_run(command)
        self.state = RunState()
        self.status: dict[str, Any] = read_json(paths.status) or {}
        self.ended = False
        self._log: BinaryIO | None = None

    def poll(self, max_bytes: int = 8 * READ_CHUNK) -> list[Event]:
        """Events from output written since the last poll (at most `max_bytes` of it)."""
        if self.ended:
            return []
        # Status first: once it says the run ended, everything the training wrote is in the log.
        self.status = read_json(self.paths.status) or self.status
        finished = self.status.get("state") in TERMINAL_STATES
        events: list[Event] = []
        drained = self._read_into(events, max_bytes)
        if finished and drained:
            events.extend(self.parser.finish())
            self.ended = True
            self.close()
        for event in events:
            self.state.apply(event)
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
