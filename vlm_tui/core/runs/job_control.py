"""A SLURM job as the login node steers it: none of its processes run there, so the scheduler
carries every signal.

Like a supervisor handle (core/runs/control.py): `poll` is None while the job lives, SIGINT asks
every node for a graceful stop, SIGTERM cancels the job (`scancel`: SLURM sends SIGTERM to every
process of it, then SIGKILL).

A graceful stop is `scancel --batch --signal=USR2`. A signal to the job's steps reaches every
process in them (measured on a real cluster: each node's vlm-tui, its supervisor, the launcher
and the ranks; torchrun answers SIGINT by killing its ranks and exiting 1); `--full --signal=INT`
reaches the job script and srun, which keeps it. USR2 with `--batch` reaches the job script's
shell alone; its trap (core/launch/slurm_job.py) runs `vlm-tui stop` once on every node, and
that signals the node's own supervisor, once (see core/runs/job_runs.py).
"""

from __future__ import annotations

import shutil
import signal
import subprocess

from vlm_tui.core.runs.slurm_queue import COMMAND_TIMEOUT_S, QueueWatcher

# What the job script traps to stop every node gracefully.
GRACEFUL_SIGNAL = "USR2"


def cancel(job_id: str, *, force: bool) -> str | None:
    """Ask SLURM to stop the job; None once asked, else why it could not be."""
    scancel = shutil.which("scancel")
    if scancel is None:
        return "scancel is not on PATH: stop it from a SLURM login node"
    argv = (
        [scancel, job_id] if force else [scancel, "--batch", f"--signal={GRACEFUL_SIGNAL}", job_id]
    )
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, check=False, timeout=COMMAND_TIMEOUT_S
        )
    except (OSError, subprocess.SubprocessError) as error:
        return f"scancel: {error}"
    if done.returncode != 0:
        said = done.stderr.strip() or done.stdout.strip() or f"exit {done.returncode}"
        return f"scancel refused: {said.splitlines()[-1]}"
    return None


class JobHandle:
    """The job behind a run folder, polled and signalled as a supervisor is."""

    def __init__(self, job_id: str, watcher: QueueWatcher | None = None) -> None:
        self.job_id = job_id
        self.watcher = watcher or QueueWatcher(job_id)
        self.refused: str | None = None  # why the last signal could not be sent

    def poll(self) -> int | None:
        """None while the job lives (or its state cannot be read); 1 once it has ended."""
        state = self.watcher.refresh()
        return 1 if state is not None and state.ended else None

    def send_signal(self, signum: int) -> None:
        self.refused = cancel(self.job_id, force=signum != signal.SIGINT)
