from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import STATE_HOME, clean_environ, run_cli


@pytest.fixture(autouse=True)
def own_runs_index(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """Each test its own runs index (XDG_STATE_HOME, read by every process it starts): runs one
    test records never show in another's `vlm-tui runs`. Session fixtures keep the process's
    scratch one (tests/helpers.py). Not under tmp_path, which some tests expect empty."""
    state = tmp_path_factory.mktemp("state-home")
    monkeypatch.setenv(STATE_HOME, str(state))
    return state


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
