"""The core stays UI-free and light; start-up never imports the training stack.

Each check runs in a fresh interpreter and reads `sys.modules`, the only honest way to see what
an import really pulled in.
"""

from __future__ import annotations

import ast
import pkgutil
from pathlib import Path

import pytest

import vlm_tui.core
from tests.helpers import modules_after

HEAVY = ("torch", "transformers", "tokenizers", "PIL", "accelerate", "axolotl", "peft", "datasets")
CORE_MODULES = sorted(
    info.name for info in pkgutil.walk_packages(vlm_tui.core.__path__, "vlm_tui.core.")
)


def _imported_after(code: str, cwd: Path) -> set[str]:
    """The top-level packages a fresh interpreter holds after running `code`."""
    return {module.split(".")[0] for module in modules_after(code, cwd)}


def test_version_checks_read_metadata_without_importing_the_stack(tmp_path: Path) -> None:
    loaded = _imported_after(
        "from vlm_tui.core.checks.preflight import check_versions\ncheck_versions()", tmp_path
    )
    assert not loaded & set(HEAVY)


@pytest.mark.parametrize("module", CORE_MODULES)
def test_core_module_imports_neither_ui_nor_training_stack(module: str, tmp_path: Path) -> None:
    loaded = _imported_after(f"import {module}", tmp_path)
    assert not loaded & {"textual", "rich", *HEAVY}, module


def test_help_does_not_import_the_training_stack(tmp_path: Path) -> None:
    code = "from vlm_tui.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass"
    assert not _imported_after(code, tmp_path) & set(HEAVY)


def test_dry_run_does_not_import_the_training_stack(tmp_path: Path) -> None:
    code = (
        "import contextlib, io\n"
        "from vlm_tui.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    assert main(['--no-ui', '--dry-run', '--demo']) == 0"
    )
    assert not _imported_after(code, tmp_path) & set(HEAVY)


# ---- the same rules, read statically from every import statement (function-level ones too) ----

# The core's sub-packages, top first: each imports only from layers below it. Packages in one
# layer are independent of each other. The shared base (`errors`, `training_child`,
# `training_plugins`) is below them all.
CORE_LAYERS: tuple[tuple[str, ...], ...] = (
    ("launch", "after"),
    ("supervise",),
    ("runs",),
    ("output", "checks", "request", "data"),
    ("host",),
    ("records", "text"),
)
CORE_BASE = ("errors", "training_child", "training_plugins")
FRONT_ENDS = (
    "vlm_tui.tui",
    "vlm_tui.headless",
    "vlm_tui.cli",
    "vlm_tui.commands",
    "vlm_tui.theme_files",
)
PACKAGE = Path(vlm_tui.core.__file__).parent.parent


def _imports_by_module() -> dict[str, set[str]]:
    """Every module of vlm_tui and the vlm_tui modules it imports anywhere in its body."""
    found: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
        found[module] = {name for name in names if name.startswith("vlm_tui")}
    return found


def _core_part(module: str) -> str | None:
    """The sub-package (or base module) of the core a module belongs to."""
    parts = module.split(".")
    return parts[2] if parts[:2] == ["vlm_tui", "core"] and len(parts) > 2 else None


def _layer(part: str) -> int:
    for depth, layer in enumerate(CORE_LAYERS):
        if part in layer:
            return depth
    assert part in CORE_BASE, f"vlm_tui.core.{part} is in no layer: add it to CORE_LAYERS"
    return len(CORE_LAYERS)


def test_every_core_package_is_in_a_layer() -> None:
    parts = {_core_part(module) for module in _imports_by_module()} - {None}
    for part in parts:
        assert part is not None
        _layer(part)  # fails naming a new package that has no place yet


def _wrong_core_imports(imports: dict[str, set[str]]) -> list[str]:
    wrong = []
    for module, imported in imports.items():
        own = _core_part(module)
        if own is None:
            continue
        for name in imported:
            if name.startswith((*FRONT_ENDS, "vlm_tui.training")):
                wrong.append(f"{module} imports {name}: the core imports no front-end or training")
            other = _core_part(name)
            if other is not None and other != own and _layer(other) <= _layer(own):
                wrong.append(f"{module} imports {name}: not from a layer below {own}")
    return sorted(wrong)


def test_core_sub_packages_import_only_downward_statically() -> None:
    assert _wrong_core_imports(_imports_by_module()) == []


def test_the_static_check_names_an_upward_or_sideways_import() -> None:
    planted = {
        "vlm_tui.core.host.hardware": {"vlm_tui.core.runs.cluster"},  # upward
        "vlm_tui.core.output.run_state": {"vlm_tui.core.request.settings"},  # sideways
        "vlm_tui.core.runs.cluster": {"vlm_tui.tui.app", "vlm_tui.core.output.run_state"},
        "vlm_tui.core.launch.steps": {"vlm_tui.core.host.topology", "vlm_tui.core.errors"},
    }
    assert _wrong_core_imports(planted) == [
        "vlm_tui.core.host.hardware imports vlm_tui.core.runs.cluster: not from a layer below host",
        "vlm_tui.core.output.run_state imports vlm_tui.core.request.settings: not from a layer"
        " below output",
        "vlm_tui.core.runs.cluster imports vlm_tui.tui.app: the core imports no front-end or"
        " training",
    ]


def test_front_ends_and_training_code_keep_their_sides_statically() -> None:
    others = ("vlm_tui.cli", "vlm_tui.commands", "vlm_tui.headless")
    wrong = []
    for module, imported in _imports_by_module().items():
        for name in imported:
            if module.startswith("vlm_tui.training") and name.startswith(FRONT_ENDS):
                wrong.append(f"{module} imports {name}: training code imports no front-end")
            if module.startswith("vlm_tui.tui") and name.startswith(others):
                wrong.append(f"{module} imports {name}: the TUI imports no other front-end")
    assert wrong == [], "\n".join(sorted(wrong))
