"""Following a SLURM job from the login node: its queue state until its run starts, then the
run's nodes as their heartbeats describe them, each said once when it changes.

Only reads (the queue, the run folder); the front-ends print or show what it returns.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from vlm_tui.core.records.folder import RunPaths
from vlm_tui.core.records.status_file import read_status
from vlm_tui.core.runs.cluster import HeartbeatTracker, cluster_view, table_lines
from vlm_tui.core.runs.job_control import JobHandle

# The heartbeats are written once a second; the table is looked at a little less often.
NODES_EVERY_S = 2.0
# After the run ended, how long to wait for SLURM to say how the job ended (other nodes end
# their part a little later).
END_WAIT_S = 60.0


class JobFollower:
    def __init__(
        self,
        paths: RunPaths,
        handle: JobHandle,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.paths = paths
        self.handle = handle
        self._clock = clock
        self._nodes_due = 0.0
        self._nodes_key: tuple[tuple[object, ...], ...] = ()
        self._tracker = HeartbeatTracker(clock)

    def run_started(self) -> bool:
        """Node 0's supervisor has recorded itself: the run folder can be followed."""
        return "supervisor_pid" in read_status(self.paths)

    def queue_lines(self) -> list[str]:
        """The queue state's line when it changed since the last call."""
        self.handle.watcher.refresh()
        line = self.handle.watcher.new_line()
        return [line] if line else []

    def ended_unstarted(self) -> bool:
        state = self.handle.watcher.state
        return state is not None and state.ended and not self.run_started()

    def unstarted_line(self) -> str:
        state = self.handle.watcher.state
        word = state.state if state is not None else "ended"
        job = self.handle.job_id
        return f"SLURM job {job} ended ({word}) before its run started: nothing was trained"

    def node_lines(self, *, now_due: bool = False) -> list[str]:
        """The nodes' table when a node came, went or changed state since it was last given."""
        now = self._clock()
        if not now_due and now < self._nodes_due:
            return []
        self._nodes_due = now + NODES_EVERY_S
        view = cluster_view(self.paths, tracker=self._tracker)
        key = tuple((row.node_rank, row.host, row.state, row.flag) for row in view.rows)
        if key == self._nodes_key:
            return []
        self._nodes_key = key
        return [f"nodes ({view.nodes} expected):", *table_lines(view)]

    def end_lines(self, sleep: Callable[[float], None] = time.sleep) -> list[str]:
        """Once the run ended: the nodes' last states and how SLURM says the job ended."""
        lines = self.node_lines(now_due=True)
        deadline = self._clock() + END_WAIT_S
        while self.handle.poll() is None and self._clock() < deadline:
            sleep(0.5)
        return [*lines, *self.queue_lines()]
