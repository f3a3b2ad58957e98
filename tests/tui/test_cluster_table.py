"""The cluster table widget: rows read off the UI thread, flags highlighted, and its place on the
monitor screen."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from textual.app import App, ComposeResult

from tests.helpers import clean_environ
from tests.tui.test_monitor_screen import open_monitor, recorded_run
from tests.tui.test_setup_screen import SIZE, make_app, wait_for
from tests.unit.test_cluster import NOW, beat, make_run
from vlm_tui.core.records.folder import RunPaths
from vlm_tui.core.runs import cluster
from vlm_tui.tui.widgets.cluster_table import (
    LOST_STYLE,
    WAITING,
    WARNING_STYLE,
    ClusterTable,
    cluster_content,
)


class TableApp(App[None]):
    def __init__(self, run: RunPaths | None) -> None:
        super().__init__()
        self.run = run

    def compose(self) -> ComposeResult:
        yield ClusterTable(self.run)


def live_beat(paths: RunPaths, rank: int, host: str, age_s: float, **fields: Any) -> None:
    """A heartbeat `age_s` old now: the widget reads with the real clock."""
    beat(paths, rank, host, age_s=age_s, now=time.time(), **fields)


def styles_of_lines(content_text: str, table: ClusterTable) -> dict[str, str]:
    """Each shown line and the style of the span that starts at it ("" when plain)."""
    content = table.content
    spans = getattr(content, "spans", [])
    styles: dict[str, str] = {}
    offset = 0
    for line in content_text.split("\n"):
        style = next((str(s.style) for s in spans if s.start == offset), "")
        styles[line] = style
        offset += len(line) + 1
    return styles


def test_flags_are_highlighted_and_the_note_shown(tmp_path: Path) -> None:
    paths = make_run(tmp_path / "runs", "job", nodes=3)
    live_beat(paths, 0, "a.invalid", 0.2)
    live_beat(paths, 1, "b.invalid", 100.0)
    app = TableApp(paths)

    async def scenario() -> None:
        async with app.run_test(size=SIZE) as pilot:
            table = app.query_one(ClusterTable)
            await wait_for(lambda: table.view is not None, pilot)
            text = table.text
            lines = text.split("\n")
            assert lines[0].startswith("NODE  HOST")
            assert [line.split()[0] for line in lines[1:]] == ["0", "1", "2"]
            styles = styles_of_lines(text, table)
            assert styles[lines[1]] == ""
            assert styles[lines[2]] == LOST_STYLE and lines[2].endswith(cluster.LOST)
            assert styles[lines[3]] == WARNING_STYLE and lines[3].endswith(cluster.NO_RECORD)

    asyncio.run(scenario())


def test_without_a_run_folder_it_waits(tmp_path: Path) -> None:
    app = TableApp(None)

    async def scenario() -> None:
        async with app.run_test(size=SIZE) as pilot:
            table = app.query_one(ClusterTable)
            await pilot.pause(0.2)
            assert table.text == WAITING and table.view is None
            paths = make_run(tmp_path / "runs", "solo", nodes=1)
            live_beat(paths, 0, "a.invalid", 0.3, utils=(90.0,))
            table.follow(paths)
            await wait_for(lambda: table.view is not None, pilot)
            assert table.text.split("\n")[1].split()[:4] == ["0", "a.invalid", "1", "90%"]

    asyncio.run(scenario())


def test_the_note_line_is_highlighted(tmp_path: Path) -> None:
    paths = make_run(tmp_path / "runs", "job", nodes=2)
    beat(paths, 0, "a.invalid", seq=40, state="finished")
    view = cluster.cluster_view(paths, now=NOW)
    content = cluster_content(view)
    assert content.plain.split("\n")[-1] == cluster.NOT_SHARED_NOTE
    note_start = content.plain.rindex(cluster.NOT_SHARED_NOTE)
    assert any(s.start == note_start and str(s.style) == WARNING_STYLE for s in content.spans)


def test_the_monitor_shows_the_nodes_of_an_attached_run(tmp_path: Path) -> None:
    paths = recorded_run(tmp_path / "runs" / "one")
    live_beat(paths, 0, "a.invalid", 0.2, state="finished")
    environ = clean_environ()
    app = make_app(tmp_path, environ)

    async def scenario() -> None:
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_monitor(app, pilot, paths)
            table = screen.query_one(ClusterTable)
            await wait_for(lambda: table.view is not None, pilot)
            assert table.view is not None
            (row,) = table.view.rows
            assert (row.node_rank, row.host, row.state, row.flag) == (
                0,
                "a.invalid",
                "finished",
                "",
            )
            assert "ended" in table.text

    asyncio.run(scenario())
