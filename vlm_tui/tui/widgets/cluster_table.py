"""The cluster table: one line per node of the run (a single line for a one-node run).

The rows come from `vlm_tui.core.runs.cluster`, which reads the heartbeats the nodes' supervisors
write into the run folder. Reading files on shared storage can stall, so a thread worker reads
them twice a second and hands the view back through `App.call_from_thread`; the widget
repaints only when the text changed. Its `HeartbeatTracker` judges a node lost by this
screen's own clock, since the node's heartbeat count last moved, whatever the nodes' clocks say.
"""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Static
from textual.worker import Worker, get_current_worker

from vlm_tui.core.records.folder import RunPaths
from vlm_tui.core.runs.cluster import (
    LOST,
    ClusterView,
    HeartbeatTracker,
    cluster_view,
    table_lines,
)

# Twice a heartbeat: a node that stops is shown lost at most half a beat after the reader
# judges it so (a few small files a read; the GPU readings themselves are the supervisor's).
POLL_INTERVAL_S = 0.5
WAITING = "nodes: waiting for the run folder"
HEADER_STYLE = "bold $text-muted"
LOST_STYLE = "bold $text-error"
WARNING_STYLE = "$text-warning"


def cluster_content(view: ClusterView) -> Content:
    """The table's text with the header muted and flagged rows and the note highlighted."""
    lines = table_lines(view)
    parts: list[Content] = [Content.styled(lines[0], HEADER_STYLE)]
    for row, line in zip(view.rows, lines[1:], strict=False):
        if row.flag == LOST:
            parts.append(Content.styled(line, LOST_STYLE))
        elif row.flag:
            parts.append(Content.styled(line, WARNING_STYLE))
        else:
            parts.append(Content(line))
    if view.note:
        parts.append(Content.styled(view.note, WARNING_STYLE))
    return Content("\n").join(parts)


class ClusterTable(Static):
    """Every node's GPUs, CPU, network, heartbeat and state; flags in colour."""

    DEFAULT_CSS = """
    ClusterTable {
        height: auto;
        max-height: 12;
        border: round $secondary;
        border-title-color: $secondary;
        padding: 0 1;
        color: $foreground;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    """

    def __init__(
        self,
        run: RunPaths | None = None,
        *,
        tracker: HeartbeatTracker | None = None,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(WAITING, markup=False, name=name, id=id, classes=classes)
        self.run = run
        self.tracker = tracker if tracker is not None else HeartbeatTracker()
        self.view: ClusterView | None = None
        self._shown: list[str] = []
        self._worker: Worker[None] | None = None

    def on_mount(self) -> None:
        self.border_title = "Nodes"
        self._poll()
        self.set_interval(POLL_INTERVAL_S, self._poll)

    def on_unmount(self) -> None:
        self.workers.cancel_group(self, "cluster")

    def follow(self, run: RunPaths) -> None:
        """Show the nodes of `run` (a run this screen has just started)."""
        self.run = run
        self._poll()

    def _poll(self) -> None:
        # Files on a stalled network mount must not pile up one blocked thread per second.
        if self.run is None or (self._worker is not None and not self._worker.is_finished):
            return
        if self.view is not None and self.view.rows and all(row.ended for row in self.view.rows):
            return  # every node recorded its end: nothing will change any more
        self._worker = self.run_worker(
            self._read_in_thread,
            name="cluster",
            group="cluster",
            exclusive=True,
            thread=True,
            # The reader never raises on bad files; should a bug make it, the monitor stays up.
            exit_on_error=False,
        )

    def _read_in_thread(self) -> None:
        worker = get_current_worker()
        run = self.run
        if run is None or worker.is_cancelled:
            return
        view = cluster_view(run, tracker=self.tracker)
        if not worker.is_cancelled:
            self.app.call_from_thread(self.show, view)

    def show(self, view: ClusterView) -> None:
        """Display `view`; call on the UI thread. Unchanged text repaints nothing."""
        self.view = view
        lines = table_lines(view)
        if lines == self._shown or not self.is_mounted:
            return
        self._shown = lines
        self.update(cluster_content(view))

    @property
    def text(self) -> str:
        """The plain text shown now (handy for tests and screen readers)."""
        return str(self.content)
