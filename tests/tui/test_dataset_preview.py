"""The dataset preview: F3 on the setup screen checks the dataset in a worker and shows its rows,
problems and images; in a real terminal (tmux) the image is drawn in Unicode half-blocks."""

from __future__ import annotations

import asyncio
import json
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pytest
from textual.widgets import Static

from harness.images import tiny_png
from harness.terminal import Tmux
from tests.helpers import clean_environ
from tests.tui.test_setup_screen import SIZE, environ_for, make_app, wait_for
from vlm_tui.tui.app import VlmTuiApp
from vlm_tui.tui.dataset_preview import DatasetPreviewScreen
from vlm_tui.tui.setup_screen import SetupScreen
from vlm_tui.tui.widgets.picture import detect_image_support

HALF_BLOCKS = ("▀", "▄")


def llava_dataset(folder: Path) -> Path:
    """Three LLaVA rows beside their images; row 2's image is missing."""
    (folder / "images").mkdir(parents=True)
    (folder / "images" / "a.png").write_bytes(tiny_png(1))
    (folder / "images" / "c.png").write_bytes(tiny_png(2))
    rows = [("a.png", "A red square."), ("missing.png", "Gone."), ("c.png", "A teal square.")]
    lines = [
        json.dumps(
            {
                "image": f"images/{name}",
                "conversations": [
                    {"from": "human", "value": "<image>\nWhat is this?"},
                    {"from": "gpt", "value": answer},
                ],
            }
        )
        for name, answer in rows
    ]
    dataset = folder / "train.jsonl"
    dataset.write_text("\n".join(lines) + "\n")
    return dataset


async def open_preview(app: VlmTuiApp, pilot: object) -> DatasetPreviewScreen:
    """F3 from the setup screen, once the check in the worker has reported."""
    await wait_for(lambda: isinstance(app.screen, SetupScreen), pilot)
    await pilot.press("f3")  # type: ignore[attr-defined]
    await wait_for(lambda: isinstance(app.screen, DatasetPreviewScreen), pilot)
    screen = app.screen
    assert isinstance(screen, DatasetPreviewScreen)
    await wait_for(lambda: screen.report is not None, pilot)
    return screen


def test_f3_previews_rows_problems_and_images(tmp_path: Path) -> None:
    detect_image_support()  # as the CLI does before the app starts
    dataset = llava_dataset(tmp_path / "data")
    app = make_app(
        tmp_path,
        environ_for(tmp_path),
        demo=False,
        dataset_name=str(dataset),
        output_model_name="m",
    )

    async def scenario() -> None:
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_preview(app, pilot)

            def shown(name: str) -> str:
                return str(screen.query_one(f"#{name}", Static).render())

            assert shown("preview-summary").startswith("3 rows (llava 3), 2 images")
            assert "row 2 names image images/missing.png" in shown("preview-problems")
            image = screen.query_one("#preview-image")
            assert "row 1 of 3 shown (llava)" in shown("preview-text")
            assert "assistant: A red square." in shown("preview-text")
            assert image.display and str(image.image).endswith("a.png")  # type: ignore[attr-defined]
            await pilot.press("e")  # the next problem: row 2
            assert "problem: row 2 names image images/missing.png" in shown("preview-text")
            assert not image.display
            await pilot.press("n")
            assert "assistant: A teal square." in shown("preview-text")
            assert str(image.image).endswith("c.png")  # type: ignore[attr-defined]
            await pilot.press("n")  # past the end: stays on the last row
            assert "row 3 of 3" in shown("preview-text")
            await pilot.press("p", "p")
            assert "row 1 of 3" in shown("preview-text")
            await pilot.press("escape")
            await wait_for(lambda: isinstance(app.screen, SetupScreen), pilot)

    asyncio.run(scenario())


def test_a_terminal_that_cannot_be_asked_gets_the_preview_without_images(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What textual-image's import did on a pseudo-terminal reporting no size: it raised.
    monkeypatch.setitem(sys.modules, "textual_image.widget", None)
    detect_image_support()
    monkeypatch.delitem(sys.modules, "textual_image.widget")
    dataset = llava_dataset(tmp_path / "data")
    app = make_app(
        tmp_path,
        environ_for(tmp_path),
        demo=False,
        dataset_name=str(dataset),
        output_model_name="m",
    )

    async def scenario() -> None:
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_preview(app, pilot)
            note = screen.query_one("#preview-image", Static)
            assert "not drawn in this terminal" in str(note.render())
            assert "assistant: A red square." in str(screen.query_one("#preview-text").render())

    asyncio.run(scenario())
    detect_image_support()  # the next tests in this process draw images again


@pytest.mark.e2e
def test_the_image_is_drawn_in_half_blocks_inside_tmux(tmp_path: Path) -> None:
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed: this test drives the TUI in a real terminal emulator")
    dataset = llava_dataset(tmp_path / "data")
    app = shlex.join(
        [
            sys.executable,
            "-m",
            "vlm_tui",
            "--dataset_name",
            str(dataset),
            "--output_model_name",
            "m",
        ]
    )
    env = clean_environ({"XDG_CONFIG_HOME": str(tmp_path / "cfg"), "TERM": "xterm-256color"})
    socket_dir = Path(tempfile.mkdtemp(prefix="vlm-tui-tmux-"))
    tmux = Tmux(socket_dir / "socket", env, "preview")
    try:
        tmux(
            "new-session", "-d", "-s", "preview", "-x", "120", "-y", "40",
            "-c", str(tmp_path), "-e", "TERM=xterm-256color", "sh", "-c", f"{app}; sleep 60",
        )  # fmt: skip
        deadline = time.monotonic() + 60
        tmux.wait_for("ready: F5", deadline)
        tmux.send("F3")
        screen = tmux.wait_for("row 1 of 3 shown", deadline)
        # The image's rows: a run of half-block characters beside the conversation.
        drawn = [line for line in screen.splitlines() if line.count(HALF_BLOCKS[0]) >= 20]
        assert len(drawn) >= 8, screen
        assert "assistant: A red square." in screen
    finally:
        tmux.kill()
        shutil.rmtree(socket_dir, ignore_errors=True)
