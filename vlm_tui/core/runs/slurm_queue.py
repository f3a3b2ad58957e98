"""A SLURM job's place in the queue, read from the login node: PENDING and why, RUNNING and
where, then how it ended.

`scontrol show job` first (it keeps a finished job for MinJobAge), `sacct` once scontrol no
longer knows the job (on clusters with accounting). A missing or failing command is a state
"unknown" with the reason, never an exception: following a job must survive a flaky scheduler.
Reads at most every POLL_S seconds, however often a front-end asks.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

UNKNOWN = "UNKNOWN"
PENDING = "PENDING"
RUNNING = "RUNNING"
# States after which the job does nothing more (a requeued job comes back as PENDING).
ENDED_STATES = frozenset(
    {
        "COMPLETED",
        "FAILED",
        "CANCELLED",
        "TIMEOUT",
        "PREEMPTED",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "BOOT_FAIL",
        "DEADLINE",
        "SPECIAL_EXIT",
    }
)
# Gentle on the controller: a few calls a minute per follower.
POLL_S = 3.0
COMMAND_TIMEOUT_S = 20.0
NO_JOB = "Invalid job id specified"

Runner = Callable[[Sequence[str]], "subprocess.CompletedProcess[str]"]


@dataclass(frozen=True)
class JobState:
    """The job as the scheduler last said; `state` is SLURM's word, or UNKNOWN with `why`."""

    job_id: str
    state: str
    reason: str = ""  # SLURM's Reason (PENDING: why it waits), or why the state is unknown
    nodes: str = ""  # the node list once it has nodes, e.g. n[1-2]
    exit_code: str = ""  # SLURM's "code:signal"

    @property
    def ended(self) -> bool:
        return self.state in ENDED_STATES

    def line(self) -> str:
        """One line for a person: `SLURM job 12: PENDING (JobHeldUser)`."""
        head = f"SLURM job {self.job_id}: {self.state}"
        if self.state == UNKNOWN:
            return f"{head} ({self.reason})" if self.reason else head
        if self.state == RUNNING:
            return f"{head} on {self.nodes}" if self.nodes else head
        if self.ended:
            where = f" on {self.nodes}" if self.nodes else ""
            code = f", exit {self.exit_code}" if self.exit_code else ""
            return f"{head}{where}{code}"
        reason = f" ({self.reason})" if self.reason and self.reason != "None" else ""
        return f"{head}{reason}"


def _value(text: str) -> str:
    return "" if text in ("(null)", "None", "N/A") else text


def parse_scontrol(job_id: str, text: str) -> JobState | None:
    """`scontrol --oneliner show job ID`'s answer; None when it holds no JobState."""
    fields = dict(word.split("=", 1) for word in text.split() if "=" in word)
    state = fields.get("JobState")
    if not state:
        return None
    return JobState(
        job_id=job_id,
        state=state,
        reason=_value(fields.get("Reason", "")),
        nodes=_value(fields.get("NodeList", "")),
        exit_code=fields.get("ExitCode", ""),
    )


SACCT_FORMAT = "JobID,State,Reason,NodeList,ExitCode"


def parse_sacct(job_id: str, text: str) -> JobState | None:
    """`sacct -X -n -P -j ID -o SACCT_FORMAT`: the job's own line (its last, after requeues).

    sacct writes "CANCELLED by 0" where scontrol writes CANCELLED, and "None assigned" for
    a node list it never had.
    """
    lines = [line.split("|") for line in text.splitlines() if line.strip()]
    own = [parts for parts in lines if len(parts) >= 5 and parts[0] == job_id]
    if not own:
        return None
    _, state, reason, nodes, code = own[-1][:5]
    return JobState(
        job_id=job_id,
        state=state.split()[0] if state.strip() else UNKNOWN,
        reason=_value(reason),
        nodes="" if nodes.startswith("None") else nodes,
        exit_code=code,
    )


def _run(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(argv), capture_output=True, text=True, check=False, timeout=COMMAND_TIMEOUT_S
    )


def _said(done: subprocess.CompletedProcess[str]) -> str:
    lines = (done.stderr.strip() or done.stdout.strip() or f"exit {done.returncode}").splitlines()
    return lines[-1]


def _ask(runner: Runner, argv: Sequence[str]) -> subprocess.CompletedProcess[str] | str:
    """The command's answer, or why there is none."""
    if shutil.which(argv[0]) is None:
        return f"{argv[0]} is not on PATH"
    try:
        return runner(argv)
    except (OSError, subprocess.SubprocessError) as error:
        return f"{argv[0]}: {error}"


def read_job_state(job_id: str, runner: Runner = _run) -> JobState:
    """The job's state now: scontrol, else sacct, else UNKNOWN with the reason."""
    asked = _ask(runner, ["scontrol", "--oneliner", "show", "job", job_id])
    if not isinstance(asked, str):
        if asked.returncode == 0:
            state = parse_scontrol(job_id, asked.stdout)
            if state is not None:
                return state
        why = _said(asked)
    else:
        why = asked
    if isinstance(asked, str) or NO_JOB in why:
        # Gone from the controller (or no scontrol here): accounting may still know it.
        sacct = _ask(runner, ["sacct", "-X", "-n", "-P", "-j", job_id, "-o", SACCT_FORMAT])
        if not isinstance(sacct, str) and sacct.returncode == 0:
            state = parse_sacct(job_id, sacct.stdout)
            if state is not None:
                return state
            why = f"{why}; sacct does not know it"
        else:
            why = f"{why}; sacct: {sacct if isinstance(sacct, str) else _said(sacct)}"
    return JobState(job_id=job_id, state=UNKNOWN, reason=why)


class QueueWatcher:
    """A job's state, read again at most every `every_s` seconds; says when its line changed."""

    def __init__(
        self,
        job_id: str,
        *,
        every_s: float = POLL_S,
        read: Callable[[str], JobState] = read_job_state,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.job_id = job_id
        self.every_s = every_s
        self._read = read
        self._clock = clock
        self._next = 0.0
        self.state: JobState | None = None
        self._shown = ""

    def refresh(self) -> JobState | None:
        """The state, read again once `every_s` has passed since the last read."""
        now = self._clock()
        if self.state is None or now >= self._next:
            self._next = now + self.every_s
            self.state = self._read(self.job_id)
        return self.state

    def new_line(self) -> str | None:
        """The state's line when it differs from the last one returned; None otherwise."""
        if self.state is None:
            return None
        line = self.state.line()
        if line == self._shown:
            return None
        self._shown = line
        return line

    def poll(self) -> str | None:
        self.refresh()
        return self.new_line()
