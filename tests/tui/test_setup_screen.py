"""The setup screen through Textual's Pilot: validation, preview, topology, presets, YAML."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import yaml
from textual.widgets import Input, Select, Static

from tests.helpers import clean_environ
from vlm_tui.core.host.detection import command_line
from vlm_tui.core.launch import steps
from vlm_tui.core.request.settings import settings_from_values
from vlm_tui.theme_files import DEFAULT_THEME
from vlm_tui.tui.app import VlmTuiApp
from vlm_tui.tui.setup_screen import SetupScreen
from vlm_tui.tui.setup_values import start_for

SIZE = (140, 45)


def make_app(
    workdir: Path, environ: dict[str, str], *, demo: bool = True, **flags: object
) -> VlmTuiApp:
    settings = settings_from_values(flags, require_data=False)
    request = steps.LaunchRequest(settings=settings, demo=demo)
    return VlmTuiApp(start_for(request, environ, workdir), environ, workdir, theme=DEFAULT_THEME)


def environ_for(tmp_path: Path) -> dict[str, str]:
    return clean_environ(
        {"VLM_TUI_CACHE_DIR": str(tmp_path / "cache"), "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    )


async def wait_for(condition: Callable[[], bool], pilot: object, seconds: float = 10) -> None:
    for _ in range(int(seconds / 0.05)):
        if condition():
            return
        await pilot.pause(0.05)  # type: ignore[attr-defined]
    screen = pilot.app.screen  # type: ignore[attr-defined]
    status = screen.query("#setup-status")
    shown = str(status.first().render()) if status else ""
    raise AssertionError(f"condition not met in time; status: {shown}")


async def setup_screen(app: VlmTuiApp, pilot: object) -> SetupScreen:
    await wait_for(lambda: isinstance(app.screen, SetupScreen), pilot)
    screen = app.screen
    assert isinstance(screen, SetupScreen)
    return screen


def text_of(app: VlmTuiApp, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


async def set_input(app: VlmTuiApp, name: str, value: str) -> None:
    app.screen.query_one(f"#field-{name}", Input).value = value


def test_invalid_values_are_marked_and_launching_is_refused(tmp_path: Path) -> None:
    environ = environ_for(tmp_path)
    app = make_app(tmp_path, environ)

    async def scenario() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(lambda: isinstance(app.screen, SetupScreen), pilot)
            await set_input(app, "batch_size", "0")
            await set_input(app, "learning_rate", "nan")
            await pilot.pause()
            assert "whole number from 1 to 4096" in text_of(app, "#error-batch_size")
            assert "finite number" in text_of(app, "#error-learning_rate")
            assert app.screen.query_one("#row-batch_size").has_class("-invalid")
            await pilot.press("f5")
            await pilot.pause()
            assert isinstance(app.screen, SetupScreen)
            assert text_of(app, "#setup-status").startswith("--batch_size: must be")
            # Fixing the field clears its error.
            await set_input(app, "batch_size", "8")
            await pilot.pause()
            assert text_of(app, "#error-batch_size") == ""
            assert "8 x 1 accumulation x 1 process = 8" in text_of(app, "#effective-batch")

    asyncio.run(scenario())
    assert not (tmp_path / "runs").exists()
    assert not (tmp_path / "outputs").exists()


def test_the_preview_is_the_core_command_for_the_same_values(tmp_path: Path) -> None:
    environ = environ_for(tmp_path)
    app = make_app(tmp_path, environ, batch_size="3")

    async def scenario() -> None:
        async with app.run_test(size=SIZE) as pilot:
            screen = await setup_screen(app, pilot)
            # A flag given on the command line prefills the form.
            assert screen.query_one("#field-batch_size", Input).value == "3"
            await set_input(app, "num_epochs", "5")
            await wait_for(
                lambda: (
                    screen.last_preview is not None
                    and "num_epochs: 5" in (screen.last_preview.yaml_text)
                ),
                pilot,
            )
            assert screen.last_preview is not None
            form = screen.form_request()
            plan = steps.plan_run(form.request, form.environ, tmp_path)
            expected = command_line(steps.preview(plan, form.environ, tmp_path).shown())
            assert screen.last_preview.command == expected
            assert text_of(app, "#command-preview") == expected
            assert "-m axolotl.cli.train" in expected
            config = yaml.safe_load(screen.last_preview.yaml_text)
            assert config["micro_batch_size"] == 3
            assert config["num_epochs"] == 5
            assert "Single GPU mode" in text_of(app, "#environment-panel")

    asyncio.run(scenario())


def test_the_topology_form_builds_a_two_node_launch(tmp_path: Path) -> None:
    environ = environ_for(tmp_path)
    app = make_app(tmp_path, environ)

    async def scenario() -> None:
        async with app.run_test(size=SIZE) as pilot:
            screen = await setup_screen(app, pilot)
            await wait_for(lambda: screen.last_preview is not None, pilot)
            # Auto mode shows what the environment says, with where it came from.
            assert screen.query_one("#field-nodes", Input).value == "1"
            assert screen.query_one("#field-nodes", Input).disabled
            screen.query_one("#field-topology", Select).value = "several_nodes"
            await pilot.pause()
            assert not screen.query_one("#field-nodes", Input).disabled
            await set_input(app, "nodes", "2")
            await set_input(app, "node_rank", "5")
            await pilot.pause()
            assert "from 0 to 1" in text_of(app, "#error-node_rank")
            await set_input(app, "node_rank", "1")
            await set_input(app, "master_addr", "node0.invalid")
            await set_input(app, "master_port", "29411")
            await wait_for(
                lambda: (
                    screen.last_preview is not None
                    and "--num_machines 2" in screen.last_preview.command
                ),
                pilot,
            )
            command = screen.last_preview.command
            assert "--machine_rank 1" in command
            assert "--main_process_ip node0.invalid --main_process_port 29411" in command
            assert "2 processes" in text_of(app, "#effective-batch")
            assert "several nodes" in text_of(app, "#environment-panel")

    asyncio.run(scenario())


def test_presets_save_and_load_through_the_form(tmp_path: Path) -> None:
    environ = environ_for(tmp_path)
    app = make_app(tmp_path, environ)

    async def scenario() -> None:
        async with app.run_test(size=SIZE) as pilot:
            screen = await setup_screen(app, pilot)
            await set_input(app, "lora_r", "64")
            screen.query_one("#file-input", Input).value = "my-preset"
            await pilot.click("#save-preset")
            await pilot.pause()
            assert "saved preset 'my-preset'" in text_of(app, "#setup-status")
            # Saving again under the same name never replaces the user's file.
            await pilot.press("ctrl+s")
            await pilot.pause()
            assert "already exists" in text_of(app, "#setup-status")
            await set_input(app, "lora_r", "8")
            await pilot.click("#load-preset")
            await pilot.pause()
            assert screen.query_one("#field-lora_r", Input).value == "64"

    asyncio.run(scenario())
    saved = yaml.safe_load(
        (tmp_path / "cfg" / "vlm-tui" / "presets" / "my-preset.yaml").read_text()
    )
    assert saved["lora_r"] == 64


def test_loading_a_yaml_fills_the_form_and_keeps_untouched_keys(tmp_path: Path) -> None:
    environ = environ_for(tmp_path)
    dataset = tmp_path / "data.jsonl"
    dataset.write_text('{"messages": []}\n')
    config = {
        "base_model": "owner/some-vlm",
        "chat_template": "llava",
        "datasets": [{"path": str(dataset), "type": "chat_template"}],
        "output_dir": "./outputs/from-yaml",
        "micro_batch_size": 6,
        "learning_rate": 0.0003,
        "weight_decay": 0.1,
    }
    path = tmp_path / "mine.yml"
    path.write_text(yaml.safe_dump(config))
    app = make_app(tmp_path, environ, demo=False)

    async def scenario() -> None:
        async with app.run_test(size=SIZE) as pilot:
            screen = await setup_screen(app, pilot)
            screen.query_one("#file-input", Input).value = str(path)
            await pilot.click("#load-yaml")
            await pilot.pause()
            assert screen.query_one("#field-batch_size", Input).value == "6"
            assert screen.query_one("#field-output_model_name", Input).value == "from-yaml"
            await set_input(app, "num_epochs", "7")
            await wait_for(
                lambda: (
                    screen.last_preview is not None
                    and "num_epochs: 7" in screen.last_preview.yaml_text
                ),
                pilot,
            )
            shown = yaml.safe_load(screen.last_preview.yaml_text)
            # The edit applies; keys the form has no field for stay as the file had them.
            assert shown["num_epochs"] == 7
            assert shown["weight_decay"] == 0.1
            assert shown["micro_batch_size"] == 6

    asyncio.run(scenario())
