"""A real terminal: tmux runs `vlm-tui --demo`, F5 trains the demo, ctrl+q quits with exit 0.

The app is drawn by a real terminal emulator (tmux) rather than Textual's test pilot, so this
catches what only shows up there: the command line entry point, key decoding, the drawing
through stderr, and the process's exit code. Each test uses a private tmux server (its own
socket), started with a clean environment, and kills it afterwards.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from harness.terminal import Tmux
from tests.helpers import clean_environ

pytestmark = pytest.mark.e2e

WIDTH = 140
HEIGHT = 45
SESSION = "vlmtui"
POLL_SECONDS = 0.5
READY_TIMEOUT = 60.0
RUN_TIMEOUT = 240.0
QUIT_TIMEOUT = 30.0
# Once status.json says the run ended, how long the screen gets to show it.
SCREEN_GRACE = 15.0

READY_TEXT = "ready: F5 launches this command"
# A log line may say "refused" or "failed" too; the state line also has the exit code. A run
# that ends without one (refused) is caught from status.json below.
ENDED = re.compile(r"\b(finished|failed|stopped) \(exit -?\d+\)")
LOSS = re.compile(r"loss \d+\.\d+")
TERMINAL_STATES = ("finished", "failed", "stopped", "refused", "dry_run")


def _wait_for(
    tmux: Tmux, done: Callable[[str], bool], timeout: float, what: str
) -> tuple[str, float]:
    """Capture the pane until `done(screen)`; fail with the last capture after `timeout`."""
    start = time.monotonic()
    screen = ""
    while time.monotonic() - start < timeout:
        screen = tmux.capture()
        if done(screen):
            return screen, time.monotonic() - start
        time.sleep(POLL_SECONDS)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}; last screen:\n{screen}")


def _run_status(workdir: Path) -> dict[str, object] | None:
    """status.json of the (only) run under workdir/runs, or None before it is readable."""
    runs = workdir / "runs"
    if not runs.is_dir():
        return None
    for run in sorted(runs.iterdir()):
        try:
            return json.loads((run / "status.json").read_text())
        except (OSError, ValueError):
            return None
    return None


def test_demo_in_tmux_trains_to_100_percent_and_quits_with_exit_0(
    demo_cache: Path, tmp_path: Path
) -> None:
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed: this test drives the TUI in a real terminal emulator")
    workdir = tmp_path / "work"
    workdir.mkdir()
    exit_file = tmp_path / "exit_code"
    app = shlex.join([sys.executable, "-m", "vlm_tui", "--demo"])
    # stderr stays on the terminal: Textual draws there. The pane outlives the app so that the
    # exit code can be read and a last screen captured; the server is killed in `finally`.
    pane = f"{app}; echo $? > {shlex.quote(str(exit_file))}; sleep 120"
    env = clean_environ({"VLM_TUI_CACHE_DIR": str(demo_cache), "TERM": "xterm-256color"})
    # A short folder of its own for the server's socket (socket paths are limited to ~100
    # bytes, which a deep tmp_path can exceed); removed with the socket in `finally`.
    socket_dir = Path(tempfile.mkdtemp(prefix="vlm-tui-tmux-"))
    tmux = Tmux(socket_dir / "socket", env, SESSION)
    final = tmp_path / "final_screen.txt"
    screen = ""
    try:
        tmux(
            "new-session", "-d", "-s", SESSION, "-x", str(WIDTH), "-y", str(HEIGHT),
            "-c", str(workdir), "-e", "TERM=xterm-256color", "sh", "-c", pane,
        )  # fmt: skip
        screen, _ = _wait_for(
            tmux, lambda s: READY_TEXT in s, READY_TIMEOUT, "the setup screen to be ready"
        )
        tmux.send("F5")

        ended_at: float | None = None

        def run_shown(current: str) -> bool:
            nonlocal ended_at
            if ENDED.search(current):
                return True
            status = _run_status(workdir)
            if status is not None and status.get("state") in TERMINAL_STATES:
                ended_at = ended_at or time.monotonic()
                # The run is over on disk; give the screen a moment, then judge what it shows.
                return time.monotonic() - ended_at > SCREEN_GRACE
            return False

        screen, took = _wait_for(tmux, run_shown, RUN_TIMEOUT, "the run to end on screen")
        final.write_text(screen)
        print(f"run ended on screen {took:.1f} s after F5; final screen:\n{screen}")

        assert "finished (exit 0)" in screen, f"the run did not finish cleanly:\n{screen}"
        assert "100%" in screen, f"no 100% on the final screen:\n{screen}"
        assert LOSS.search(screen), f"no loss value on the final screen:\n{screen}"

        status = _run_status(workdir)
        assert status is not None, f"no run folder with status.json under {workdir / 'runs'}"
        assert status["state"] == "finished", status

        tmux.send("C-q")
        start = time.monotonic()
        while time.monotonic() - start < QUIT_TIMEOUT:
            if exit_file.is_file() and exit_file.read_text().strip():
                break
            time.sleep(POLL_SECONDS)
        else:
            pytest.fail(f"vlm-tui did not exit after ctrl+q; screen:\n{tmux.capture()}")
        assert exit_file.read_text().strip() == "0", (
            f"exit code {exit_file.read_text().strip()}; screen:\n{tmux.capture()}"
        )
    finally:
        if not final.exists():
            final.write_text(screen or tmux.capture())
        tmux.kill()
        shutil.rmtree(socket_dir, ignore_errors=True)
