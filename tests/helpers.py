"""Shared test helpers: run the real `vlm-tui` command in a scratch folder."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

import pytest

from vlm_tui.cli import main
from vlm_tui.core.records.folder import RunPaths, write_json_atomic

REPO = Path(__file__).resolve().parent.parent
# `make test-fast` sets this: every Python a test starts finds a training stack that refuses to
# be imported, so a unit test that needs torch fails instead of slowing the inner loop.
BLOCK_TRAINING_STACK = "VLM_TUI_TEST_BLOCK_TRAINING_STACK"
NO_TRAINING_STACK = REPO / "tests" / "fixtures" / "no_training_stack"
# The runs index lives in XDG_STATE_HOME: tests point it at a scratch folder of this process
# (tests/conftest.py gives each test its own), never at the user's, from the first import on.
STATE_HOME = "XDG_STATE_HOME"
TEST_STATE_HOME = tempfile.mkdtemp(prefix="vlm-tui-test-state-")
atexit.register(shutil.rmtree, TEST_STATE_HOME, True)
os.environ[STATE_HOME] = TEST_STATE_HOME


def clean_environ(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without distributed variables that would change the mode,
    and with a scratch runs index (XDG_STATE_HOME), never the user's."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key
        not in ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK", "NODE_RANK")
        and not key.startswith(("SLURM_", "PET_", "OMPI_", "PMI_", "SM_", "TORCHELASTIC_"))
    }
    blocked = [str(NO_TRAINING_STACK)] if os.environ.get(BLOCK_TRAINING_STACK) else []
    env["PYTHONPATH"] = os.pathsep.join([*blocked, str(REPO)])
    env.setdefault(STATE_HOME, TEST_STATE_HOME)
    env.update(extra or {})
    return env


def run_cli(
    args: list[str], cwd: Path, env: Mapping[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vlm_tui", *args],
        cwd=cwd,
        env=dict(env) if env is not None else clean_environ(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_cli(args: list[str], cwd: Path, env: Mapping[str, str]) -> subprocess.Popen[str]:
    """The real `vlm-tui` command, running: its output (stdout and stderr) in one pipe."""
    return subprocess.Popen(
        [sys.executable, "-m", "vlm_tui", *args],
        cwd=cwd,
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def refused(
    args: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> str:
    """`vlm-tui --no-ui --dry-run ARGS` in `tmp_path`, in this process, refused as a user
    mistake must be: exit 2, one stderr line (returned), no traceback, no process started,
    nothing created."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VLM_TUI_CACHE_DIR", str(tmp_path / "cache"))

    def no_process(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"a process was started: {args!r}")

    monkeypatch.setattr(subprocess, "Popen", no_process)
    code: object
    try:
        code = main(["--no-ui", "--dry-run", *args])
    except SystemExit as exit_:  # argparse's own refusals
        code = exit_.code
    captured = capsys.readouterr()
    assert code == 2, captured.out + captured.err
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err + captured.out
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no runs/, no outputs/, no cache
    return lines[0]


def refused_command(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """`vlm-tui ARGS` in this process, refused as a user mistake must be: exit 2, one stderr
    line (returned), no traceback."""
    code: object
    try:
        code = main(args)
    except SystemExit as exit_:  # argparse's own refusals
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    return err.strip()


def guide_node_env(demo_cache: Path, rank: int, port: int) -> dict[str, str]:
    """The guide's variables for one node of a two-node job on this host."""
    return clean_environ(
        {
            "VLM_TUI_CACHE_DIR": str(demo_cache),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "WORLD_SIZE": "2",
            "RANK": str(rank),
        }
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def only_run(workdir: Path) -> Path:
    runs = sorted((workdir / "runs").iterdir())
    assert len(runs) == 1, runs
    return runs[0]


DEMO_STEPS_ONE_PROCESS = 32  # the demo's 64 samples x 2 epochs / batch 4


def train_steps(run: Path) -> list[int]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [r["step"] for r in map(json.loads, lines) if r["kind"] == "train"]


def script_run(root: Path, code: str) -> RunPaths:
    """A run folder whose training is a Python script, as record_run would write it."""
    root.mkdir()
    paths = RunPaths(root)
    write_json_atomic(
        paths.command,
        {
            "argv": [sys.executable, "-c", code],
            "cwd": str(root),
            "logging_steps": 1,
            "start_step": 0,
            "topology": {},
        },
    )
    write_json_atomic(paths.status, {"run_id": paths.run_id, "state": "created"})
    return paths


def modules_after(code: str, cwd: Path) -> set[str]:
    """Every module a fresh interpreter holds after running `code` (the honest way to see what
    an import really pulled in)."""
    probe = f"import json, sys\n{code}\nprint(json.dumps(sorted(sys.modules)))\n"
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
