"""A private tmux server (its own socket file) holding one session: a real terminal emulator to
draw the TUI in, for the overhead bench and the real-terminal tests alike."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Mapping
from pathlib import Path


class Tmux:
    def __init__(self, socket: Path, env: Mapping[str, str], session: str) -> None:
        self.socket = socket
        self.env = dict(env)
        self.session = session

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        # -f /dev/null: the user's tmux.conf must not change what the pane shows.
        return subprocess.run(
            ["tmux", "-S", str(self.socket), "-f", "/dev/null", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=30,
            check=check,
        )

    def capture(self) -> str:
        """The pane's text, or a note saying why there is none (for failure messages)."""
        done = self("capture-pane", "-p", "-t", self.session, check=False)
        return done.stdout if done.returncode == 0 else f"<capture failed: {done.stderr.strip()}>"

    def wait_for(self, text: str, deadline: float) -> str:
        """The pane's text once it shows `text`; AssertionError with the pane's text when the
        monotonic clock passes `deadline` first."""
        while text not in (screen := self.capture()):
            assert time.monotonic() < deadline, f"{text!r} not shown:\n{screen}"
            time.sleep(0.3)
        return screen

    def send(self, key: str) -> None:
        self("send-keys", "-t", self.session, key)

    def pid(self, field: str) -> int:
        """A pid tmux knows of the session: "pid" (the server), "pane_pid" (the pane's shell)."""
        return int(self("display-message", "-p", "-t", self.session, f"#{{{field}}}").stdout)

    def kill(self) -> None:
        self("kill-server", check=False)
