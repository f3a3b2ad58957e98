"""The monitor says where a run's trackers keep its records: names in the header, places in
the log (from the run folder's trackers.json)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.helpers import clean_environ
from tests.tui.test_monitor_screen import open_monitor, recorded_run
from tests.tui.test_setup_screen import SIZE, make_app, wait_for
from vlm_tui.core.records.trackers_file import TrackerPlace, write_trackers
from vlm_tui.tui.widgets.log_view import LogView


def test_the_monitor_shows_the_runs_trackers(tmp_path: Path) -> None:
    paths = recorded_run(tmp_path / "runs" / "20261124T100000Z-pets")
    places = [
        TrackerPlace("tensorboard", str(tmp_path / "outputs" / "pets" / "runs")),
        TrackerPlace("mlflow", str(tmp_path / "mlruns"), "pets", paths.run_id),
    ]
    write_trackers(paths, places)
    environ = clean_environ()
    app = make_app(tmp_path, environ)

    async def scenario() -> None:
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_monitor(app, pilot, paths)
            await wait_for(lambda: screen.view.ended, pilot)
            assert screen.sub_title == f"run: {paths.run_id}  trackers: tensorboard,mlflow"
            log = screen.query_one(LogView)
            log.flush_now()
            history = log.history()
            assert history[0] == f"[vlm-tui] tracker tensorboard: {tmp_path}/outputs/pets/runs"
            assert history[1] == (
                f"[vlm-tui] tracker mlflow: {tmp_path}/mlruns (project pets, run {paths.run_id})"
            )

    asyncio.run(scenario())
