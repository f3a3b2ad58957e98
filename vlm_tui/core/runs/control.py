"""A run's supervisor as a front-end holds it: one it started (a Popen) or one found on disk.

Front-ends steer a run only through its supervisor: SIGINT asks for a graceful stop, SIGTERM
forces one. A supervisor started by another process (before a UI was killed, or from another
SSH session) is known by the pid in status.json, checked to still be a vlm-tui supervisor so a
reused pid is never signalled.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Protocol

from vlm_tui.core.records.folder import RunPaths
from vlm_tui.core.records.status_file import read_status

SUPERVISOR_MODULE = "vlm_tui.core.supervise.supervisor"


class SupervisorHandle(Protocol):
    def poll(self) -> int | None: ...

    def send_signal(self, signum: int) -> None: ...


def supervisor_alive(status: dict[str, Any]) -> bool:
    """Whether the supervisor named in status.json still runs (and is still ours)."""
    pid = status.get("supervisor_pid")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # another user's process: not the supervisor we started
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as source:
            command = source.read().replace(b"\0", b" ")
    except OSError:
        return True  # no /proc here: trust the pid
    return SUPERVISOR_MODULE.encode() in command


class RecordedSupervisor:
    """A supervisor this process did not start, known by the pid in status.json."""

    def __init__(self, paths: RunPaths) -> None:
        self.paths = paths

    def _status(self) -> dict[str, Any]:
        return read_status(self.paths)

    def poll(self) -> int | None:
        """None while it runs, like Popen.poll; 1 once it is gone (its code is in status.json)."""
        status = self._status()
        if "supervisor_pid" not in status:
            return None  # recorded, its supervisor not started yet
        return None if supervisor_alive(status) else 1

    def send_signal(self, signum: int) -> None:
        status = self._status()
        pid = status.get("supervisor_pid")
        if isinstance(pid, int) and supervisor_alive(status):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)
