"""The Try screen on the trained demo: the base model and the fine-tuned adapter answer its rows
side by side (Pilot), the prompt box asks both models more without reloading them, another
checkpoint is chosen from the list, and Merge writes a merged model; in a real terminal (tmux)
`vlm-tui try` opens the screen with the row's image drawn in half-blocks."""

from __future__ import annotations

import asyncio
import re
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pytest
from textual.widgets import DataTable, Input, OptionList, Static

from harness.terminal import Tmux
from tests.helpers import clean_environ
from tests.tui.test_dataset_preview import HALF_BLOCKS
from tests.tui.test_setup_screen import SIZE
from vlm_tui.core.after.try_request import has_weights
from vlm_tui.core.launch.steps import LaunchRequest
from vlm_tui.core.records.folder import RUNS_FOLDER, RunPaths
from vlm_tui.core.request.settings import settings_from_values
from vlm_tui.core.runs.run_index import run_folders
from vlm_tui.theme_files import DEFAULT_THEME
from vlm_tui.tui.app import VlmTuiApp
from vlm_tui.tui.setup_values import start_for
from vlm_tui.tui.try_screen import TryScreen

# With the demo's other users: they share the `demo_run` training (tests/conftest.py).
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("demo-run")]

ROWS = 4
FORM = re.compile(r"A (\w+) (circle|square|triangle)\.")
# Bounds on waiting for the child's answers, far above what they need; never speed targets.
ANSWERS_BOUND_S = 240.0


def _trained_run(workdir: Path) -> RunPaths:
    return next(p for p in reversed(run_folders(workdir / RUNS_FOLDER)) if has_weights(p))


def _cells(table: DataTable[str], column: str) -> list[str]:
    return [str(cell) for cell in table.get_column(column)]


async def _until(condition: object, pilot: object, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            screen = pilot.app.screen  # type: ignore[attr-defined]
            state = str(screen.query_one("#try-state", Static).render())
            raise AssertionError(f"{what}: not in time; state: {state}")
        await pilot.pause(0.1)  # type: ignore[attr-defined]


def test_the_try_screen_answers_asks_more_switches_weights_and_merges(
    demo_run: tuple[Path, str, int], demo_cache: Path
) -> None:
    workdir, _, code = demo_run
    assert code == 0
    run = _trained_run(workdir)
    environ = clean_environ({"VLM_TUI_CACHE_DIR": str(demo_cache)})
    request = LaunchRequest(settings=settings_from_values({}, require_data=False))
    app = VlmTuiApp(
        start_for(request, environ, workdir),
        environ,
        workdir,
        theme=DEFAULT_THEME,
        try_run=run,
        try_options={"rows": ROWS, "max_new_tokens": 8},
    )
    image = next((demo_cache / "demo").glob("v*/data/images/010_*.png"))
    merged = workdir / "outputs" / "vlm-tui-demo-checkpoint-16-merged"

    async def scenario() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await _until(lambda: isinstance(app.screen, TryScreen), pilot, 30, "the screen")
            screen = app.screen
            assert isinstance(screen, TryScreen)
            table: DataTable[str] = screen.query_one("#try-table", DataTable)
            state = screen.query_one("#try-state", Static)

            def answered(count: int) -> bool:
                return table.row_count == count and "…" not in _cells(table, "fine-tuned") + (
                    _cells(table, "base")
                )

            await _until(lambda: answered(ROWS), pilot, ANSWERS_BOUND_S, "the rows' answers")
            tuned = _cells(table, "fine-tuned")
            base = _cells(table, "base")
            print(f"fine-tuned: {tuned}\nbase: {base}")
            assert sum(bool(FORM.match(answer)) for answer in tuned) >= ROWS // 2
            assert not any(FORM.match(answer) for answer in base)
            assert "answers that begin with the dataset's answer: fine-tuned " in str(
                state.render()
            )
            detail = str(screen.query_one("#try-detail-text", Static).render())
            assert "reference:  A " in detail and "fine-tuned: A " in detail

            # The prompt box: the loaded models answer an image and a prompt of the user's.
            screen.query_one("#try-image-path", Input).value = str(image)
            prompt = screen.query_one("#try-prompt", Input)
            prompt.value = "What is this?"
            prompt.focus()
            await pilot.press("enter")
            await _until(lambda: answered(ROWS + 1), pilot, ANSWERS_BOUND_S, "the own prompt")
            assert _cells(table, "row")[-1] == f"your prompt {ROWS + 1}"
            assert FORM.match(_cells(table, "fine-tuned")[-1])
            assert str(image) in str(screen.query_one("#try-detail-text", Static).render())

            # The weights list: the final ones and each checkpoint with its loss.
            weights = screen.query_one("#try-weights", OptionList)
            labels = [
                str(weights.get_option_at_index(i).prompt) for i in range(weights.option_count)
            ]
            assert labels[0].startswith("final  loss ") and any(
                label.startswith("step 16  loss ") for label in labels
            ), labels
            weights.focus()
            weights.highlighted = next(i for i, label in enumerate(labels) if "step 16 " in label)
            await pilot.press("enter")
            heading = screen.query_one("#try-heading", Static)
            await _until(
                lambda: "checkpoint at step 16" in str(heading.render()), pilot, 30, "step 16"
            )
            # The rows and the prompt box's question, asked of the checkpoint's weights.
            await _until(lambda: answered(ROWS + 1), pilot, ANSWERS_BOUND_S, "step 16's answers")

            # Merge: the chosen checkpoint's adapter, into a new folder, checked.
            table.focus()
            await pilot.press("m")
            await _until(
                lambda: "merged model saved to" in str(state.render()),
                pilot,
                ANSWERS_BOUND_S,
                "the merge",
            )
            assert str(merged) in str(state.render())
            await pilot.press("m")  # again: the folder exists now, and is never written over
            await _until(
                lambda: "not merged:" in str(state.render()), pilot, 30, "the second merge"
            )
            await pilot.press("escape")
            await _until(lambda: not isinstance(app.screen, TryScreen), pilot, 10, "back")

    asyncio.run(scenario())
    names = {path.name for path in merged.iterdir()}
    assert {"config.json", "processor_config.json", "tokenizer.json"} <= names, names
    assert any(name.endswith(".safetensors") for name in names), names


def test_vlm_tui_try_in_tmux_draws_the_rows_image_in_half_blocks(
    demo_run: tuple[Path, str, int], demo_cache: Path
) -> None:
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed: this test drives the TUI in a real terminal emulator")
    workdir, _, code = demo_run
    assert code == 0
    command = shlex.join(
        [sys.executable, "-m", "vlm_tui", "try", "--rows", "2", "--max_new_tokens", "6"]
    )
    env = clean_environ({"VLM_TUI_CACHE_DIR": str(demo_cache), "TERM": "xterm-256color"})
    for sized in ("COLUMNS", "LINES"):  # the terminal's own size, not an inherited one
        env.pop(sized, None)
    socket_dir = Path(tempfile.mkdtemp(prefix="vlm-tui-tmux-"))
    tmux = Tmux(socket_dir / "socket", env, "try")
    try:
        tmux(
            "new-session", "-d", "-s", "try", "-x", "150", "-y", "42",
            "-c", str(workdir), "-e", "TERM=xterm-256color", "sh", "-c", f"{command}; sleep 60",
        )  # fmt: skip
        # The pane's size again, once the app draws: a fresh clone's run drew the app at 80x24
        # in a pane created bigger; a resize reaches the app as SIGWINCH and it lays out anew.
        deadline = time.monotonic() + ANSWERS_BOUND_S
        tmux.wait_for("m Merge adapter", deadline)
        tmux("resize-window", "-t", "try", "-x", "150", "-y", "42", check=False)
        screen = tmux.wait_for("answers that begin with the dataset's answer", deadline)
        drawn = [line for line in screen.splitlines() if line.count(HALF_BLOCKS[0]) >= 20]
        assert len(drawn) >= 8, screen
        assert max(len(line.rstrip()) for line in screen.splitlines()) > 100, screen
        assert "reference:  A " in screen and "fine-tuned: " in screen
        assert "m Merge adapter" in screen
        print(screen)
    finally:
        tmux.kill()
        shutil.rmtree(socket_dir, ignore_errors=True)
