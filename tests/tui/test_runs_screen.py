"""The run history screen through Textual's Pilot, on run folders recorded by hand."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path

from textual.pilot import Pilot
from textual.widgets import DataTable, Label, Static

from tests.tui.test_setup_screen import SIZE, environ_for, make_app, wait_for
from tests.unit.test_scaling import CONFIG, scaling_run
from vlm_tui.core.runs.user_index import record
from vlm_tui.tui.app import VlmTuiApp
from vlm_tui.tui.runs_screen import RunsScreen
from vlm_tui.tui.setup_screen import SetupScreen
from vlm_tui.tui.widgets.loss_chart import LossChart


def cell_texts(table: DataTable[str], row: int) -> list[str]:
    return [str(cell) for cell in table.get_row_at(row)]


async def history_with_rows(
    app: VlmTuiApp, pilot: Pilot[int], rows: int
) -> tuple[RunsScreen, DataTable[str]]:
    """F2 from the setup screen, once the history has read `rows` runs."""
    await wait_for(lambda: isinstance(app.screen, SetupScreen), pilot)
    await pilot.press("f2")
    await wait_for(lambda: isinstance(app.screen, RunsScreen), pilot)
    screen = app.screen
    assert isinstance(screen, RunsScreen)
    table: DataTable[str] = screen.query_one("#runs-table", DataTable)
    await wait_for(lambda: table.row_count == rows, pilot)
    return screen, table


def test_f2_opens_the_run_history_with_speedups_and_charts(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    scaling_run(runs, "20261124T100000Z-vlm-tui-demo", samples_per_second=50.0)
    scaling_run(runs, "20261124T100100Z-vlm-tui-demo-2", processes=2, samples_per_second=85.0)
    scaling_run(
        runs,
        "20261124T100200Z-wide",
        processes=2,
        samples_per_second=90.0,
        config={**CONFIG, "micro_batch_size": 8},
    )
    scaling_run(runs, "20261124T100300Z-failed", state="failed")
    app = make_app(tmp_path, environ_for(tmp_path))

    async def scenario() -> None:
        async with app.run_test(size=SIZE) as pilot:
            screen, table = await history_with_rows(app, pilot, 3)
            assert cell_texts(table, 0)[-2:] == ["1.0x (baseline)", "1x (baseline)"]
            assert cell_texts(table, 1)[-2:] == ["1.7x", "~1.75x (at 87.5% efficiency)"]
            assert cell_texts(table, 2)[-2:] == [
                "no 1-process baseline",
                "~1.75x (at 87.5% efficiency)",
            ]
            heading = str(screen.query_one("#runs-heading", Static).render())
            assert heading.startswith("3 finished runs under ")
            curves = str(screen.query_one("#runs-curves", Static).render()).splitlines()
            assert curves[0].startswith("loss by epoch")
            assert [line.split()[0] for line in curves[1:]] == [
                "20261124T100000Z-vlm-tui-demo",
                "20261124T100100Z-vlm-tui-demo-2",
                "20261124T100200Z-wide",
            ]

            selected = screen.query_one("#selected-chart", LossChart)
            baseline = screen.query_one("#baseline-chart", LossChart)

            def title(which: str) -> str:
                return str(screen.query_one(f"#{which}-title", Label).render())

            # The newest run is highlighted first; it has no baseline to show.
            assert title("selected").startswith("20261124T100200Z-wide: 2 processes")
            assert (
                title("baseline")
                == f"no finished 1-process run of config {cell_texts(table, 2)[1]}"
            )
            assert not baseline.display
            await pilot.press("up")
            await wait_for(lambda: baseline.display, pilot)
            assert title("selected") == "20261124T100100Z-vlm-tui-demo-2: 2 processes, 1.7x"
            assert title("baseline") == "baseline: 20261124T100000Z-vlm-tui-demo (1 process)"
            await wait_for(lambda: selected.last_rendered_points > 0, pilot)
            await wait_for(lambda: baseline.last_rendered_points > 0, pilot)
            assert "min 0.438 @ step 16" in selected.render().plain
            assert "min 0.219 @ step 32" in baseline.render().plain
            await pilot.press("up")
            await wait_for(lambda: not baseline.display, pilot)
            assert title("baseline") == "this run is its config's 1-process baseline"
            await pilot.press("b")
            await wait_for(lambda: isinstance(app.screen, SetupScreen), pilot)

    asyncio.run(scenario())


def test_an_empty_history_says_so(tmp_path: Path) -> None:
    app = make_app(tmp_path, environ_for(tmp_path))

    async def scenario() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(lambda: isinstance(app.screen, SetupScreen), pilot)
            await pilot.press("f2")
            await wait_for(lambda: isinstance(app.screen, RunsScreen), pilot)
            heading = app.screen.query_one("#runs-heading", Static)
            await wait_for(lambda: str(heading.render()).startswith("no finished runs"), pilot)
            assert app.screen.query_one("#runs-table", DataTable).row_count == 0
            # Runs finished since the screen opened show up on reload.
            scaling_run(tmp_path / "runs", "20261124T100000Z-late", samples_per_second=50.0)
            await pilot.press("r")
            table = app.screen.query_one("#runs-table", DataTable)
            await wait_for(lambda: table.row_count == 1, pilot)
            await pilot.press("escape")
            await wait_for(lambda: isinstance(app.screen, SetupScreen), pilot)

    asyncio.run(scenario())


def test_runs_started_elsewhere_are_listed_with_their_folder_and_gone_ones_marked(
    tmp_path: Path,
) -> None:
    here = tmp_path / "here"
    project = tmp_path / "project" / "runs"
    local = scaling_run(here / "runs", "20261124T100000Z-here", samples_per_second=50.0)
    far = scaling_run(project, "20261124T100100Z-far", samples_per_second=60.0)
    deleted = scaling_run(project, "20261124T100200Z-deleted", samples_per_second=70.0)
    for paths in (local, far, deleted):
        assert record(paths, os.environ) is None
    shutil.rmtree(deleted.root)
    app = make_app(here, environ_for(here))

    async def scenario() -> None:
        async with app.run_test(size=SIZE) as pilot:
            screen, table = await history_with_rows(app, pilot, 3)
            assert str(table.ordered_columns[-1].label) == "WHERE"
            rows = [cell_texts(table, row) for row in range(3)]
            assert [(row[0], row[-1]) for row in rows] == [
                ("20261124T100000Z-here", "here"),
                ("20261124T100100Z-far", str(tmp_path / "project")),
                ("20261124T100200Z-deleted", str(tmp_path / "project")),
            ]
            assert rows[2][-3] == "- (gone)"
            heading = str(screen.query_one("#runs-heading", Static).render())
            assert heading.startswith("2 finished runs under ") and heading.endswith("; 1 gone")
            # The newest run that can be shown is highlighted; the gone one shows nothing.
            title = screen.query_one("#selected-title", Label)
            assert str(title.render()).startswith("20261124T100100Z-far: 1 process")
            await pilot.press("down")
            await wait_for(lambda: "gone" in str(title.render()), pilot)
            assert str(title.render()) == (
                f"20261124T100200Z-deleted: gone (its folder {deleted.root} is gone)"
            )
            assert not screen.query_one("#selected-chart", LossChart).display
            assert str(deleted.root) in screen.gone and str(deleted.root) not in screen.compared

    asyncio.run(scenario())
