"""The Textual application: themes, the two screens, and quitting without losing a run.

One factory (`VlmTuiApp(...)`) serves the CLI and the tests alike. The app never owns a run:
each run belongs to its supervisor, so quitting asks first while one is live, and then leaves
it running rather than stopping it.
"""

from __future__ import annotations

import gc
import subprocess
from collections.abc import Iterable, Mapping
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Label

from vlm_tui.core.records.folder import TERMINAL_STATES, RunPaths
from vlm_tui.core.records.status_file import read_status
from vlm_tui.theme_files import THEMES_DIR
from vlm_tui.tui.setup_screen import SetupScreen
from vlm_tui.tui.setup_values import FormStart
from vlm_tui.tui.themes import register_themes

STYLESHEET = THEMES_DIR / "app.tcss"


def freeze_startup_objects() -> None:
    """Leave everything built at start-up out of Python's garbage collector passes.

    Tens of thousands of objects (Textual's widgets, styles, caches) live as long as the app;
    rescanning them in every full collection lengthens the pauses a log flood triggers.
    """
    gc.freeze()


class ConfirmQuit(ModalScreen[bool]):
    """Asked before quitting while a run is live: the run keeps going either way."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss(False)", "Cancel"),
        Binding("y", "dismiss(True)", "Quit"),
    ]

    def __init__(self, run_folder: str) -> None:
        super().__init__()
        self.run_folder = run_folder

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-quit"):
            yield Label("A run is live. Quit the UI and leave it running?", markup=False)
            yield Label(f"Its record keeps growing in {self.run_folder}", markup=False)
            with Horizontal():
                yield Button("Quit, leave it running (y)", id="quit-yes", variant="warning")
                yield Button("Stay (Esc)", id="quit-no")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "quit-yes")


class VlmTuiApp(App[int]):
    TITLE = "vlm-tui"
    CSS_PATH = str(STYLESHEET)
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+q", "quit_app", "Quit", priority=True),
    ]

    def __init__(
        self,
        start: FormStart,
        environ: Mapping[str, str],
        workdir: Path,
        *,
        theme: str,
        skip_check: bool = False,
        attach_to: RunPaths | None = None,
        try_run: RunPaths | None = None,
        try_options: Mapping[str, Any] | None = None,
    ) -> None:
        """`attach_to`: open on the monitor of that existing run (`vlm-tui attach`); `try_run`:
        on the Try screen of that run, with `try_options` (`vlm-tui try` in a terminal)."""
        super().__init__()
        self.start = start
        self.environ = dict(environ)
        self.workdir = workdir
        self.skip_check = skip_check
        self.attach_to = attach_to
        self.try_run = try_run
        self.try_options = dict(try_options or {})
        # Every supervisor started from this app, live or not: quitting asks while one is live.
        self.started_runs: list[tuple[Path, subprocess.Popen[bytes]]] = []
        register_themes(self)
        self.theme = theme

    def on_mount(self) -> None:
        self.push_screen(SetupScreen(self.start, self.environ, self.workdir))
        self.call_after_refresh(freeze_startup_objects)
        if self.attach_to is not None:
            from vlm_tui.tui.monitor_screen import MonitorScreen

            self.push_screen(
                MonitorScreen(None, self.environ, self.workdir, run_folder=self.attach_to)
            )
        if self.try_run is not None:
            from vlm_tui.tui.try_screen import TryScreen

            self.push_screen(TryScreen(self.try_run, self.environ, **self.try_options))

    def compose(self) -> ComposeResult:
        return iter(())

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        """The palette lists the active screen's keys as commands, next to Textual's own."""
        yield from super().get_system_commands(screen)
        for binding in screen.BINDINGS:
            if isinstance(binding, Binding) and binding.show:
                action = binding.action
                yield SystemCommand(
                    f"{binding.description} ({binding.key})",
                    f"{binding.description}: key {binding.key}",
                    partial(screen.run_action, action),
                )

    def live_run_folder(self) -> str | None:
        """A run started here that is still going. Its status.json decides once it records an
        end: the supervisor records it first and tidies up after, still alive for a moment."""
        for folder, supervisor in self.started_runs:
            if supervisor.poll() is not None:
                continue
            if read_status(RunPaths(folder)).get("state") not in TERMINAL_STATES:
                return str(folder)
        return None

    async def action_quit_app(self) -> None:
        folder = self.live_run_folder()
        if folder is None:
            self.exit(0)
            return

        def decided(quit_now: bool | None) -> None:
            if quit_now:
                self.exit(0)

        self.push_screen(ConfirmQuit(folder), decided)
