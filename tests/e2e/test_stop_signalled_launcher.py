"""A graceful stop whose SIGINT reaches the launcher too, as a scheduler's does.

`scancel --signal=INT` (and a time limit's or a preemption's signal) reaches every process of a
job step, the launcher among them: torchrun answers with its SignalException, passes SIGINT to
its ranks and exits 1 although every rank ends its loop, saves and exits 0. The real demo on
two processes (gloo over 127.0.0.1) shows the run is recorded as the stop it was: state
"stopped", exit code 0 as for one process, the launcher's own code kept beside it.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.e2e.test_stops import (
    STEP_WAIT_S,
    STOP_WAIT_S,
    start_long_demo,
    status_of,
    wait_for,
)
from vlm_tui.core.runs.checkpoints import newest_checkpoint

pytestmark = pytest.mark.e2e


@pytest.mark.timeout(STEP_WAIT_S + STOP_WAIT_S + 120)
def test_a_graceful_stop_that_also_signals_the_launcher_is_recorded_as_stopped_exit_0(
    demo_cache: Path, tmp_path: Path
) -> None:
    paths, supervisor = start_long_demo(tmp_path, demo_cache, 2)
    try:

        def stepping() -> bool:
            if supervisor.poll() is not None:
                pytest.fail(f"the run ended before it was stopped: {status_of(paths)}")
            progress = status_of(paths).get("progress") or {}
            # Armed: the ranks take a stop at a step boundary from here on.
            return int(progress.get("step") or 0) >= 1 and paths.stop_armed.exists()

        wait_for(stepping, STEP_WAIT_S, "a training step with the stop armed")
        launcher = status_of(paths)["child_pid"]
        # What a scheduler does: the same signal to the supervisor and the launcher at once.
        supervisor.send_signal(signal.SIGINT)
        os.kill(launcher, signal.SIGINT)
        supervisor.wait(timeout=STOP_WAIT_S)
    finally:
        if supervisor.poll() is None:
            supervisor.send_signal(signal.SIGTERM)
            supervisor.wait(timeout=60)
    status = status_of(paths)
    log = paths.log.read_text(errors="replace")
    # The launcher did take the signal itself and failed the way torchrun does.
    assert "SignalException" in log, log[-3000:]
    assert status.get("launcher_exit_code") == 1, status
    assert status["state"] == "stopped" and status["stop_requested"] == "graceful", status
    assert status["exit_code"] == 0 and status["reason"] is None, status
    assert supervisor.returncode == 0
    # Every rank ended its loop the graceful way: weights and a checkpoint at the last step.
    assert status["model_saved_to"] == status["output_dir"], status
    newest = newest_checkpoint(Path(status["output_dir"]))
    assert newest is not None and newest[0] == status["progress"]["step"], status
