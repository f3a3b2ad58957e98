"""The end of a run is recorded even when the supervisor's own bookkeeping fails at the end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import clean_environ
from vlm_tui.core.records.folder import RunPaths, read_json, write_json_atomic

# The supervisor as `python -m vlm_tui.core.supervise.supervisor RUN` runs it, with a bug
# planted in a step only the end takes (the last heartbeat).
BROKEN_END = """
import sys
from vlm_tui.core.supervise import supervisor

def broken(self, final_state, timeout_s=5.0):
    raise RuntimeError("planted")

supervisor.NodeRecorder.stop = broken
sys.exit(supervisor.main([sys.argv[1]]))
"""


@pytest.mark.parametrize(("code", "state"), [(0, "finished"), (3, "failed")])
def test_a_failing_end_step_still_records_the_end(tmp_path: Path, code: int, state: str) -> None:
    paths = RunPaths(tmp_path / "run")
    paths.root.mkdir()
    child = f"print('trained', flush=True); raise SystemExit({code})"
    write_json_atomic(paths.command, {"argv": [sys.executable, "-c", child], "cwd": str(tmp_path)})
    done = subprocess.run(
        [sys.executable, "-c", BROKEN_END, str(paths.root)],
        env=clean_environ(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr
    status = read_json(paths.status) or {}
    assert (status["state"], status["exit_code"]) == (state, code), status
    assert status["ended_at"]
    assert status["reason"] == "vlm-tui could not record the whole end: RuntimeError: planted"
    assert "trained" in paths.log.read_text()
