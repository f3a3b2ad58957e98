"""The supervisor's parsing yields the CPU to the training it watches, and never the reverse."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.helpers import clean_environ
from vlm_tui.core.records.folder import RunPaths, read_json, write_json_atomic
from vlm_tui.core.supervise.supervisor import AUTOGROUP, PARSE_NICENESS


def _autogroup_nice(pid: int) -> int:
    # "/autogroup-123 nice 5"
    return int(Path(f"/proc/{pid}/autogroup").read_text().split()[-1])


def test_the_supervisor_runs_below_the_training_in_process_and_session(tmp_path: Path) -> None:
    paths = RunPaths(tmp_path / "run")
    paths.root.mkdir()
    child = "import time; print('started', flush=True); time.sleep(30)"
    write_json_atomic(paths.command, {"argv": [sys.executable, "-c", child], "cwd": str(tmp_path)})
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "vlm_tui.core.supervise.supervisor", str(paths.root)],
        env=clean_environ(),
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        status: dict[str, object] = {}
        while time.monotonic() < deadline:
            status = read_json(paths.status) or {}
            started = paths.log.exists() and "started" in paths.log.read_text()
            if status.get("child_pid") and started:
                break
            time.sleep(0.05)
        training = psutil.Process(int(str(status["child_pid"])))
        watcher = psutil.Process(supervisor.pid)
        deadline = time.monotonic() + 10
        while watcher.nice() != PARSE_NICENESS and time.monotonic() < deadline:
            time.sleep(0.05)
        assert watcher.nice() == PARSE_NICENESS
        assert training.nice() == 0
        if not AUTOGROUP.exists():
            pytest.skip("this kernel has no autogroup scheduling: the process nice is all")
        assert _autogroup_nice(supervisor.pid) == PARSE_NICENESS
        assert _autogroup_nice(training.pid) == 0
    finally:
        supervisor.terminate()
        supervisor.wait(timeout=30)
