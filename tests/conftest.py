from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import clean_environ, run_cli


@pytest.fixture(scope="session")
def demo_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One demo model cache for the whole session, never the user's own cache folder."""
    return tmp_path_factory.mktemp("demo-cache")


@pytest.fixture(scope="session")
def demo_run(demo_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, int]:
    """One real `vlm-tui --no-ui --demo` (1 process): its work folder, output and exit code.

    Session-wide so the scaling comparison (test_e2e_distributed.py) reuses it beside the
    2-process run instead of training another.
    """
    workdir = tmp_path_factory.mktemp("demo-run")
    done = run_cli(
        ["--no-ui", "--demo"], workdir, clean_environ({"VLM_TUI_CACHE_DIR": str(demo_cache)})
    )
    return workdir, done.stdout + done.stderr, done.returncode
