"""The run history screen: every finished run's throughput, speed-up and loss curve, here and
in the runs index (runs started elsewhere; those whose folder is gone listed as gone).

The same comparison as `vlm-tui runs --compare` (vlm_tui/core/runs/scaling.py): a table of the runs,
their loss curves side by side on one scale, and for the highlighted run its own chart next to
its 1-process baseline's. The run folders are read in a thread worker, never on the UI thread.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Label, Static

from vlm_tui.core.records.folder import RUNS_FOLDER, RunPaths
from vlm_tui.core.runs.run_index import by_age, is_here, where_text
from vlm_tui.core.runs.scaling import (
    COLUMNS,
    NOTE_LINES,
    ComparedRun,
    RunThroughput,
    Selection,
    gone_cells,
    loss_curve_lines,
    row_cells,
    select_and_compare,
)
from vlm_tui.core.runs.user_index import indexed_runs
from vlm_tui.tui.widgets.loss_chart import LossChart

CURVE_WIDTH = 60
NOTE_WIDTH = 130


class RunsScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("r", "reload", "Reload"),
        Binding("t", "try_model", "Try the model"),
        Binding("b", "back", "Back to setup"),
        Binding("escape", "back", "Back to setup", show=False),
    ]

    DEFAULT_CSS = """
    #runs-heading { height: auto; padding: 0 1; color: $accent; }
    #runs-table { height: auto; max-height: 12; }
    #runs-curves { height: auto; padding: 0 1; margin-top: 1; }
    #runs-charts { height: 1fr; min-height: 8; }
    .runs-chart-panel { width: 1fr; border: round $primary-muted; }
    .runs-chart-title { height: 1; color: $accent; }
    #runs-note { height: auto; padding: 0 1; color: $text-muted; }
    """

    def __init__(self, workdir: Path) -> None:
        super().__init__()
        self.runs_root = workdir / RUNS_FOLDER
        # Both keyed by the run folder (a name can repeat across folders); a gone run has no row
        # in `compared`, so nothing opens it.
        self.compared: dict[str, ComparedRun] = {}
        self.gone: dict[str, RunPaths] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(f"reading {self.runs_root} ...", id="runs-heading", markup=False)
        table: DataTable[str] = DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        yield table
        yield Static("", id="runs-curves", markup=False)
        with Horizontal(id="runs-charts"):
            with Vertical(classes="runs-chart-panel"):
                yield Label("", id="selected-title", classes="runs-chart-title", markup=False)
                yield LossChart(id="selected-chart")
            with Vertical(classes="runs-chart-panel"):
                yield Label("", id="baseline-title", classes="runs-chart-title", markup=False)
                yield LossChart(id="baseline-chart")
        note = "\n".join(textwrap.fill(line, NOTE_WIDTH) for line in NOTE_LINES)
        yield Static(note, id="runs-note", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "run history"
        self.action_reload()

    def action_reload(self) -> None:
        self._load()

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_try_model(self) -> None:
        """The Try screen for the highlighted run."""
        from vlm_tui.core.after.try_request import has_weights
        from vlm_tui.tui.try_screen import TryScreen

        table: DataTable[str] = self.query_one("#runs-table", DataTable)
        if not self.compared or table.cursor_row < 0:
            self.notify("no run highlighted", severity="warning")
            return
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        one = self.compared.get(key or "")
        if one is None or not has_weights(one.run.paths):
            self.notify("this run saved no weights to try", severity="warning")
            return
        environ = getattr(self.app, "environ", None) or dict(os.environ)
        self.app.push_screen(TryScreen(one.run.paths, environ))

    @work(thread=True, exclusive=True, group="runs", exit_on_error=False)
    def _load(self) -> None:
        try:
            environ = getattr(self.app, "environ", None) or os.environ
            selection = select_and_compare(self.runs_root, indexed=indexed_runs(environ))
        except OSError as error:
            self.app.call_from_thread(self._show_error, f"cannot read {self.runs_root}: {error}")
            return
        self.app.call_from_thread(self._show, selection)

    def _show_error(self, text: str) -> None:
        self.query_one("#runs-heading", Static).update(text)

    def _show(self, selection: Selection) -> None:
        self.compared = {str(one.run.paths.root): one for one in selection.compared}
        self.gone = {str(paths.root): paths for paths in selection.gone}
        count = len(selection.compared)
        heading = self.query_one("#runs-heading", Static)
        index_note = f"; {len(self.gone)} gone" if self.gone else ""
        if not count:
            heading.update(f"no finished runs under {self.runs_root}{index_note}")
        else:
            plural = "" if count == 1 else "s"
            heading.update(f"{count} finished run{plural} under {self.runs_root}{index_note}")
        rows = {str(one.run.paths.root): row_cells(one) for one in selection.compared}
        rows.update({key: gone_cells(paths) for key, paths in self.gone.items()})
        listed = by_age([*(one.run.paths for one in selection.compared), *selection.gone])
        # The folder each run was started in, once a run from elsewhere is listed.
        elsewhere = any(not is_here(paths, self.runs_root) for paths in listed)
        table: DataTable[str] = self.query_one("#runs-table", DataTable)
        table.clear(columns=True)
        table.add_columns(*COLUMNS, *(["WHERE"] if elsewhere else []))
        for paths in listed:
            where = [where_text(paths, self.runs_root)] if elsewhere else []
            table.add_row(*rows[str(paths.root)], *where, key=str(paths.root))
        runs = [one.run for one in selection.compared]
        curves = loss_curve_lines(runs, CURVE_WIDTH) if runs else []
        self.query_one("#runs-curves", Static).update("\n".join(curves))
        if count:
            newest = str(selection.compared[-1].run.paths.root)
            table.move_cursor(row=table.get_row_index(newest))
            self._show_charts(selection.compared[-1])
        else:
            self._show_charts(None)

    @on(DataTable.RowHighlighted, "#runs-table")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        key = event.row_key.value
        if key is not None and key in self.compared:
            self._show_charts(self.compared[key])
        elif key is not None and key in self.gone:
            paths = self.gone[key]
            self._chart("selected", None, f"{paths.run_id}: gone (its folder {paths.root} is gone)")
            self._chart("baseline", None, "")

    def _show_charts(self, one: ComparedRun | None) -> None:
        if one is None:
            self._chart("selected", None, "no run highlighted")
            self._chart("baseline", None, "")
            return
        run = one.run
        processes = "1 process" if run.processes == 1 else f"{run.processes or '?'} processes"
        self._chart("selected", run, f"{run.paths.run_id}: {processes}, {one.speedup_text}")
        baseline = one.baseline
        if baseline is None:
            self._chart("baseline", None, f"no finished 1-process run of config {run.config_id}")
        elif baseline.paths == run.paths:
            self._chart("baseline", None, "this run is its config's 1-process baseline")
        else:
            self._chart("baseline", baseline, f"baseline: {baseline.paths.run_id} (1 process)")

    def _chart(self, which: str, run: RunThroughput | None, title: str) -> None:
        chart = self.query_one(f"#{which}-chart", LossChart)
        self.query_one(f"#{which}-title", Label).update(title)
        if run is None or not run.losses:
            chart.display = False
            return
        chart.display = True
        chart.set_data([(point.step, point.loss) for point in run.losses])
