"""The subcommands: one module each, all registered, none imported before it is named."""

from __future__ import annotations

import pkgutil
from pathlib import Path

import vlm_tui.commands
from tests.helpers import modules_after
from vlm_tui.commands import COMMANDS, DEFAULT, load

SHARED = {"common"}


def test_every_subcommand_module_is_registered_and_has_its_two_functions() -> None:
    modules = {info.name for info in pkgutil.iter_modules(vlm_tui.commands.__path__)} - SHARED
    assert {path.rsplit(".", 1)[1] for path in COMMANDS.values()} == modules
    for name in COMMANDS:
        command = load(name)
        assert callable(command.build_parser) and callable(command.execute), name
        prog = command.build_parser().prog
        assert prog == ("vlm-tui" if name == DEFAULT else f"vlm-tui {name}"), (name, prog)


def test_help_imports_only_the_command_it_shows(tmp_path: Path) -> None:
    code = (
        "import contextlib, io\n"
        "from vlm_tui.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        "        main(['stop', '--help'])\n"
        "    except SystemExit:\n"
        "        pass"
    )
    loaded = sorted(m for m in modules_after(code, tmp_path) if m.startswith("vlm_tui.commands."))
    assert loaded == ["vlm_tui.commands.common", "vlm_tui.commands.stop"]
