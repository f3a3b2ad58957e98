"""The monitor screen: following a recorded run, and launching the real demo from the form."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import ProgressBar, Static

from tests.helpers import clean_environ
from tests.recorded_runs import record_output
from tests.tui.test_setup_screen import SIZE, make_app, wait_for
from vlm_tui.core.records.folder import RunPaths, read_json, write_json_atomic
from vlm_tui.core.records.job_file import write_job_record
from vlm_tui.tui.app import VlmTuiApp
from vlm_tui.tui.monitor_screen import MonitorScreen, RunView
from vlm_tui.tui.setup_screen import SetupScreen
from vlm_tui.tui.widgets.log_view import LogView
from vlm_tui.tui.widgets.loss_chart import LossChart


def recorded_run(root: Path, steps: int = 20, state: str = "finished") -> RunPaths:
    """A run folder as the supervisor leaves it, written by hand."""
    root.mkdir(parents=True)
    paths = RunPaths(root)
    write_json_atomic(
        paths.command,
        {"argv": ["python"], "logging_steps": 1, "start_step": 0, "topology": {"world_size": 2}},
    )
    paths.config.write_text("micro_batch_size: 4\ngradient_accumulation_steps: 2\n")
    lines = ["[2026-11-24 10:00:00,000] [INFO] [axolotl.train] Starting trainer..."]
    for step in range(1, steps + 1):
        loss = 7.0 / step
        lines.append(f"{{'loss': '{loss:.4f}', 'learning_rate': '0.01', 'epoch': '{step / 10}'}}")
        bar = "█" * (10 * step // steps)
        lines.append(
            f"\r{100 * step // steps:3d}%|{bar:<10}| {step}/{steps} [00:0{step % 10}<00:01,"
            f" 10.00it/s]"
        )
    lines.append("[2026-11-24 10:00:09,000] [INFO] [axolotl.train] Training completed!")
    code = 0 if state == "finished" else 1
    record_output(paths, "\n".join(lines) + "\n", {"state": state, "exit_code": code})
    return paths


async def open_monitor(app: VlmTuiApp, pilot: Pilot[int], paths: RunPaths) -> MonitorScreen:
    """The monitor following `paths`, pushed over the app's setup screen."""
    await wait_for(lambda: isinstance(app.screen, SetupScreen), pilot)
    screen = MonitorScreen(None, app.environ, app.workdir, run_folder=paths)
    await app.push_screen(screen)
    return screen


def test_run_view_lines() -> None:
    view = RunView(samples_per_step=16, world_size=2)
    assert view.progress_line() == "waiting for the trainer's first step"
    view.status = {"state": "failed", "exit_code": 1, "reason": "exit 1", "cause": "c", "fix": "f"}
    assert view.state_lines() == ["failed (exit 1)", "reason: exit 1", "cause: c", "fix: f"]
    # A graceful stop not taken is said while the run lives, with how to force it.
    view.status = {"state": "running", "stop_notice": "not taken; force it with K"}
    assert view.state_lines() == ["running", "stop: not taken; force it with K"]
    view.ended = True
    assert view.state_lines() == ["running"]


def test_following_a_recorded_run_fills_the_chart_progress_and_state(tmp_path: Path) -> None:
    paths = recorded_run(tmp_path / "runs" / "one")
    environ = clean_environ()
    app = make_app(tmp_path, environ)

    async def scenario() -> None:
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_monitor(app, pilot, paths)
            await wait_for(lambda: screen.view.ended, pilot)
            chart = screen.query_one(LossChart)
            await wait_for(lambda: chart.last_rendered_points > 0, pilot)
            assert chart.last_rendered_points > 0
            assert "loss 0.35" in chart.render().plain
            bar = screen.query_one(ProgressBar)
            assert (bar.progress, bar.total) == (20, 20)
            line = str(screen.query_one("#progress-line", Static).render())
            # 10 it/s x 4 per batch x 2 accumulation x 2 processes.
            assert "step 20/20 (100%)" in line
            assert "160 samples/s" in line
            assert str(screen.query_one("#run-state", Static).render()) == "finished (exit 0)"
            log = screen.query_one(LogView)
            log.flush_now()
            assert log.lines_received >= 22
            # Keys on a finished run say so instead of signalling anything.
            await pilot.press("s")
            await pilot.press("l")
            assert chart.log_scale
            await pilot.press("b")
            await pilot.pause()
            assert isinstance(app.screen, SetupScreen)

    asyncio.run(scenario())


# Passed to the training, never shown or written by vlm-tui (names known, or containing KEY,
# TOKEN, SECRET or PASSWORD).
SECRETS = {
    "HF_TOKEN": "hf_SeCrEt0aaaaaaaaaaaaaaaaaaaaaa1",
    "HUGGING_FACE_HUB_TOKEN": "hfhub-SeCrEt0bbbbbbbbbbbbbbbbbb2",
    "WANDB_API_KEY": "wandb-SeCrEt0ccccccccccccccccccc3",
    "AWS_SECRET_ACCESS_KEY": "aws-SeCrEt0dddddddddddddddddddd4",
    "MY_DB_PASSWORD": "pw-SeCrEt0eeeeeeeeeeeeeeeeeeeeee5",
}


def _secrets_in(text: str) -> list[str]:
    return [name for name, value in SECRETS.items() if value in text]


@pytest.mark.e2e
def test_launching_the_demo_from_the_form_trains_and_finishes(
    demo_cache: Path, tmp_path: Path
) -> None:
    environ = clean_environ({"VLM_TUI_CACHE_DIR": str(demo_cache), **SECRETS})
    app = make_app(tmp_path, environ)

    async def scenario() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(lambda: isinstance(app.screen, SetupScreen), pilot)
            setup = app.screen
            assert isinstance(setup, SetupScreen)
            await wait_for(lambda: setup.last_preview is not None, pilot)
            assert setup.last_preview is not None
            shown = " ".join(
                [
                    app.export_screenshot(),
                    setup.last_preview.command,
                    setup.last_preview.yaml_text,
                    "\n".join(setup.last_preview.environment),
                ]
            )
            assert _secrets_in(shown) == []
            await pilot.press("f5")
            await wait_for(lambda: isinstance(app.screen, MonitorScreen), pilot)
            screen = app.screen
            assert isinstance(screen, MonitorScreen)
            await wait_for(lambda: screen.view.ended, pilot, seconds=400)
            # The state and progress are set with `ended`; the chart draws on the next frame.
            await wait_for(lambda: screen.query_one(LossChart).last_rendered_points > 0, pilot)
            assert str(screen.query_one("#run-state", Static).render()).startswith(
                "finished (exit 0)"
            )
            assert screen.view.loss_points == 32
            chart = screen.query_one(LossChart)
            assert chart.last_rendered_points > 0
            assert chart.render().plain.startswith("loss ")
            bar = screen.query_one(ProgressBar)
            assert bar.total == 32 and bar.progress == 32
            assert "step 32/32 (100%)" in str(screen.query_one("#progress-line", Static).render())
            assert screen.paths is not None
            command = read_json(screen.paths.command)
            assert command is not None
            log = screen.query_one(LogView)
            log.flush_now()
            assert log.lines_received > 50
            status = read_json(screen.paths.status)
            assert status is not None and status["state"] == "finished"
            # No secret on screen, in the log pane's whole history, or in the run folder.
            assert _secrets_in(app.export_screenshot()) == []
            assert _secrets_in("\n".join(log.history())) == []
            for path in screen.paths.root.rglob("*"):
                if path.is_file():
                    assert _secrets_in(path.read_text(errors="replace")) == [], path
            # They were in the launch environment: recorded by name, redacted.
            recorded = (read_json(screen.paths.command) or {})["env"]
            assert all(recorded[name] == "<redacted>" for name in SECRETS)
            # Quitting after the run needs no confirmation and exits 0.
            await pilot.press("ctrl+q")

    asyncio.run(scenario())
    assert app.return_code in (0, None)
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1
    assert json.loads((runs[0] / "status.json").read_text())["exit_code"] == 0


@pytest.mark.e2e
def test_checkpoint_now_and_a_graceful_stop_from_the_keys(demo_cache: Path, tmp_path: Path) -> None:
    environ = clean_environ({"VLM_TUI_CACHE_DIR": str(demo_cache)})
    # Long enough to press keys during training: 64 epochs of 16 steps.
    app = make_app(tmp_path, environ, num_epochs="64")

    async def scenario() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(lambda: isinstance(app.screen, SetupScreen), pilot)
            await pilot.press("ctrl+r")
            await wait_for(lambda: isinstance(app.screen, MonitorScreen), pilot)
            screen = app.screen
            assert isinstance(screen, MonitorScreen)

            def step() -> int:
                progress = screen.view.progress
                return progress.step if progress is not None else 0

            await wait_for(lambda: step() >= 3, pilot, seconds=400)
            await pilot.press("c")
            output = Path(str(screen.view.status["output_dir"]))
            await wait_for(lambda: any(output.glob("checkpoint-*")), pilot, seconds=60)
            asked_at = step()
            await pilot.press("s")
            await wait_for(lambda: screen.view.ended, pilot, seconds=120)
            state = str(screen.query_one("#run-state", Static).render())
            assert state.startswith("stopped"), state
            assert asked_at < 1024
            checkpoints = sorted(output.glob("checkpoint-*"))
            assert checkpoints, "checkpoint now saved nothing"
            # The graceful stop let axolotl save the adapter before exiting.
            assert (output / "adapter_model.safetensors").exists()

    asyncio.run(scenario())


def test_resume_is_refused_with_a_reason_and_launches_nothing(tmp_path: Path) -> None:
    finished = recorded_run(tmp_path / "runs" / "finished")
    stopped = recorded_run(tmp_path / "runs" / "stopped", state="stopped")
    output = tmp_path / "outputs" / "empty"
    output.mkdir(parents=True)
    stopped.config.write_text(f"output_dir: {output}\nmicro_batch_size: 4\n")
    environ = clean_environ()
    app = make_app(tmp_path, environ)
    notes: list[str] = []

    async def scenario() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(lambda: isinstance(app.screen, SetupScreen), pilot)
            for paths in (finished, stopped):
                screen = MonitorScreen(None, environ, tmp_path, run_folder=paths)
                await app.push_screen(screen)
                await wait_for(lambda screen=screen: screen.view.ended, pilot)
                await pilot.press("r")
                await wait_for(lambda: len(app._notifications) > len(notes), pilot)
                notes.extend(str(note.message) for note in list(app._notifications)[len(notes) :])
                assert app.screen is screen
                app.pop_screen()
                await pilot.pause()

    asyncio.run(scenario())
    assert notes[0] == "only a stopped or failed run can be resumed"
    assert notes[1] == (
        f"cannot resume: {output} holds no complete checkpoint-N folder to go on from;"
        " run without --resume"
    )
    assert sorted(path.name for path in (tmp_path / "runs").iterdir()) == ["finished", "stopped"]


def test_quitting_asks_only_until_a_started_run_records_its_end(tmp_path: Path) -> None:
    """The supervisor records the end in status.json, then tidies up for a moment before it
    exits: from that record on, ctrl+q quits without asking about a live run."""
    from vlm_tui.tui.app import ConfirmQuit

    paths = recorded_run(tmp_path / "runs" / "20261124T100000Z-run", state="finished")
    write_json_atomic(paths.status, {"state": "running"})
    app = make_app(tmp_path, clean_environ())
    still_tidying = subprocess.Popen(["sleep", "60"])  # the supervisor, still alive
    app.started_runs.append((paths.root, still_tidying))

    async def scenario() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(lambda: isinstance(app.screen, SetupScreen), pilot)
            await pilot.press("ctrl+q")
            await wait_for(lambda: isinstance(app.screen, ConfirmQuit), pilot)
            await pilot.press("escape")
            await wait_for(lambda: isinstance(app.screen, SetupScreen), pilot)
            write_json_atomic(paths.status, {"state": "finished", "exit_code": 0})
            await pilot.press("ctrl+q")
            await wait_for(lambda: not app.is_running, pilot)

    try:
        asyncio.run(scenario())
    finally:
        still_tidying.kill()
        still_tidying.wait()
    assert app.return_code == 0


def test_a_slurm_jobs_state_lines_lead_with_its_queue_state() -> None:
    view = RunView(samples_per_step=1, world_size=1)
    view.queue_line = "SLURM job 7: PENDING (JobHeldUser)"
    # No run record yet: the queue state and what the screen waits for.
    assert view.state_lines() == [
        "SLURM job 7: PENDING (JobHeldUser)",
        "waiting for the job's node 0 to start the run",
    ]
    view.queue_line = "SLURM job 7: RUNNING on n[1-2]"
    view.status = {"state": "running"}
    assert view.state_lines() == ["SLURM job 7: RUNNING on n[1-2]", "running"]
    view.unstarted = "SLURM job 7 ended (CANCELLED) before its run started: nothing was trained"
    assert view.state_lines() == [view.unstarted]


def test_a_jobs_run_folder_is_followed_from_its_queue_state_to_node_0s_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No SLURM commands on PATH: the queue state reads UNKNOWN with why, the screen waits for
    node 0's records instead of failing, s goes to SLURM (and says why it cannot), and the run
    is followed once its records appear."""
    monkeypatch.setenv("PATH", str(tmp_path / "no-commands"))
    job_folder = tmp_path / "runs" / "job"
    job_folder.mkdir(parents=True)
    paths = RunPaths(job_folder)
    write_job_record(paths, {"scheduler": "slurm", "job_id": "4242"})
    staged = recorded_run(tmp_path / "staged")
    environ = clean_environ()
    app = make_app(tmp_path, environ)

    async def scenario() -> None:
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_monitor(app, pilot, paths)
            state = screen.query_one("#run-state", Static)
            await wait_for(lambda: "SLURM job 4242: UNKNOWN" in str(state.render()), pilot)
            shown = str(state.render())
            assert "scontrol is not on PATH" in shown
            assert "waiting for the job's node 0 to start the run" in shown
            log = screen.query_one(LogView)
            await pilot.press("s")

            def said(text: str) -> bool:
                log.flush_now()
                return any(text in line for line in log.history())

            await wait_for(lambda: said("cannot stop SLURM job 4242: scancel is not on"), pilot)
            # Node 0 starts: its records appear, status.json (naming its supervisor) last.
            status = read_json(staged.status)
            assert status is not None
            for name in ("command.json", "config.yml", "train.log", "metrics.jsonl"):
                (job_folder / name).write_bytes((staged.root / name).read_bytes())
            write_json_atomic(paths.status, {**status, "supervisor_pid": 1})
            await wait_for(lambda: screen.view.ended, pilot)
            shown = str(state.render())
            assert shown.splitlines()[:2] == [
                "SLURM job 4242: UNKNOWN (scontrol is not on PATH; sacct: sacct is not on PATH)",
                "finished (exit 0)",
            ]
            # Its batch shape is read once node 0 recorded it: 4 x 2 x 2 processes.
            assert screen.view.samples_per_step == 16
            assert said("the job's run started")

    asyncio.run(scenario())
