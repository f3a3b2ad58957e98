"""The core stays UI-free and light; start-up never imports the training stack.

Each check runs in a fresh interpreter and reads `sys.modules`, the only honest way to see what
an import really pulled in.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import vlm_tui.core
from tests.helpers import clean_environ

HEAVY = ("torch", "transformers", "tokenizers", "PIL", "accelerate", "axolotl", "peft", "datasets")
CORE_MODULES = sorted(
    f"vlm_tui.core.{info.name}" for info in pkgutil.iter_modules(vlm_tui.core.__path__)
)


def _imported_after(code: str, cwd: Path) -> set[str]:
    probe = (
        "import json, sys\n"
        f"{code}\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=cwd,
        env=clean_environ(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def test_version_checks_read_metadata_without_importing_the_stack(tmp_path: Path) -> None:
    loaded = _imported_after(
        "from vlm_tui.core.preflight import check_versions\ncheck_versions()", tmp_path
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
