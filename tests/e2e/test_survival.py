"""Runs outlive their UI: kill -9 of the TUI or of `--no-ui` mid-run loses no line and no step.

The real demo trains under its supervisor; the front-end that launched it is killed with
SIGKILL (no chance to clean up) while the training is running. The run must still finish, its
status.json must record exit 0, train.log must hold everything a direct run of the same command
prints, and `attach` must show the whole history.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import psutil
import pytest
import yaml

from harness.terminal import Tmux
from tests.helpers import clean_environ, run_cli, start_cli
from tests.tui.test_real_terminal import HEIGHT, SESSION, WIDTH
from vlm_tui.core.launch.steps import LaunchRequest
from vlm_tui.core.records.folder import RunPaths, read_json
from vlm_tui.core.request.settings import settings_from_values

pytestmark = pytest.mark.e2e

STEPS = 32  # the demo's optimizer steps
RUN_TIMEOUT = 300.0
STAMP = re.compile(r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}\]")
GLOG_STAMP = re.compile(r"^W\d{4} \d\d:\d\d:\d\d\.\d+ +\d+ ")
# A value in the trainer's metric lines ("{'loss': '0.3456', 'tokens/total': 3968, ...}"): two
# runs of one command differ in their throughput figures and, on a CPU, in the last digits of
# every float, so only which metrics each line holds is compared.
METRIC_VALUE = re.compile(r"(': )('[^']*'|[-+.\w]+)")
# A tqdm bar ("  3%|▎    | 1/32 [00:00<00:21,  1.43it/s]", "Generating train split: 64
# examples [00:00, 2500.52 examples/s]"): when and how often it is redrawn,
# and so how many newlines its redraws leave, depends on timing, not on what the run says.
TQDM_BAR = re.compile(r"^.*?\[(?:\d+:)?\d\d:\d\d(?:<[^\]]*)?,[^\]]*\]")


def _the_run(workdir: Path, timeout: float = 120.0) -> RunPaths:
    """The run folder once its training child is running."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = sorted((workdir / "runs").glob("*")) if (workdir / "runs").is_dir() else []
        if runs:
            status = read_json(runs[-1] / "status.json") or {}
            if status.get("state") == "running" and status.get("child_pid"):
                return RunPaths(runs[-1])
        time.sleep(0.1)
    pytest.fail(f"no running run under {workdir / 'runs'} after {timeout:.0f} s")


def _wait_for_end(paths: RunPaths) -> dict[str, object]:
    deadline = time.monotonic() + RUN_TIMEOUT
    while time.monotonic() < deadline:
        status = read_json(paths.status) or {}
        if status.get("state") in ("finished", "failed", "stopped"):
            return status
        time.sleep(0.2)
    pytest.fail(f"the run did not end within {RUN_TIMEOUT:.0f} s: {read_json(paths.status)}")


def _kill_9(process: psutil.Process) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)


def _normalised(line: str, *folders: Path) -> str:
    """A log line without timestamps or metric values, the run's own folders named alike."""
    line = GLOG_STAMP.sub("W ", STAMP.sub("[time]", line))
    if line.startswith("{'"):
        line = METRIC_VALUE.sub(r"\1<value>", line)
    for folder in folders:
        line = line.replace(str(folder), "<folder>")
    return line.rstrip()


def _said(log: str) -> list[str]:
    """What a log says, line by line, as a terminal leaves it, without progress bars."""
    said = []
    for physical in log.split("\n"):
        line = TQDM_BAR.sub("", physical.split("\r")[-1]).strip()
        if line:
            said.append(line)
    return said


# Printed or not by timing alone: transformers warns when two checkpoints share an mtime.
TIMING_LINES = ("mtime may not be reliable on this filesystem",)


def _lost_lines(direct: list[str], logged: list[str]) -> list[str]:
    """Lines of the direct run that train.log holds fewer times, even inside another line."""
    text = "\n".join(logged)
    return [
        line
        for line, times in Counter(direct).items()
        if text.count(line) < times and not any(mark in line for mark in TIMING_LINES)
    ]


def _direct_run(paths: RunPaths, scratch: Path) -> str:
    """The run's recorded command, run directly (no vlm-tui) into another output folder."""
    command = read_json(paths.command)
    assert command is not None
    config = yaml.safe_load(paths.config.read_text())
    config["output_dir"] = str(scratch / "direct-output")
    scratch.mkdir()
    direct_config = scratch / "config.yml"
    direct_config.write_text(yaml.safe_dump(config, sort_keys=False))
    # Its own datasets cache, as the run had: a warm cache prints fewer lines.
    env = {**command["env"], "HF_DATASETS_CACHE": str(scratch / "datasets-cache")}
    argv = [str(direct_config) if part == str(paths.config) else part for part in command["argv"]]
    log = scratch / "direct.log"
    with log.open("wb") as sink:
        # The recorded environment holds no secret here, so it is the run's exact environment.
        subprocess.run(
            argv,
            cwd=scratch,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            timeout=RUN_TIMEOUT,
            check=True,
        )
    return log.read_text(errors="replace")


def _check_the_whole_history(paths: RunPaths, workdir: Path) -> None:
    status = read_json(paths.status) or {}
    assert status["state"] == "finished" and status["exit_code"] == 0, status
    records = [json.loads(line) for line in paths.metrics.read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "train"] == list(range(1, STEPS + 1))
    # attach --no-ui: the whole log from the start, every loss, the run's exit code.
    attached = run_cli(["attach", "--no-ui", paths.run_id], workdir)
    assert attached.returncode == 0, attached.stderr
    assert attached.stdout.count("'loss'") == STEPS
    assert "[vlm-tui] finished (exit 0)" in attached.stdout
    # attach in the TUI: the chart gets the whole loss curve from metrics.jsonl.
    from tests.tui.test_setup_screen import SIZE, wait_for
    from vlm_tui.tui.app import VlmTuiApp
    from vlm_tui.tui.monitor_screen import MonitorScreen
    from vlm_tui.tui.setup_values import start_for

    environ = clean_environ()
    request = LaunchRequest(settings=settings_from_values({}, require_data=False))
    start = start_for(request, environ, workdir)
    app = VlmTuiApp(start, environ, workdir, theme="vlm-dark", attach_to=paths)

    async def scenario() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(lambda: isinstance(app.screen, MonitorScreen), pilot)
            screen = app.screen
            assert isinstance(screen, MonitorScreen)
            await wait_for(lambda: screen.view.ended, pilot, seconds=60)
            assert screen.view.loss_points == STEPS
            assert screen.view.status["state"] == "finished"

    asyncio.run(scenario())


def test_kill_9_of_the_tui_mid_run_loses_nothing(demo_cache: Path, tmp_path: Path) -> None:
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed: this test drives the TUI in a real terminal emulator")
    workdir = tmp_path / "work"
    workdir.mkdir()
    env = clean_environ(
        {
            "VLM_TUI_CACHE_DIR": str(demo_cache),
            "TERM": "xterm-256color",
            "HF_DATASETS_CACHE": str(tmp_path / "datasets-cache"),
        }
    )
    socket_dir = Path(tempfile.mkdtemp(prefix="vlm-tui-tmux-"))
    tmux = Tmux(socket_dir / "socket", env, SESSION)
    app = shlex.join([sys.executable, "-m", "vlm_tui", "--demo"])
    try:
        tmux(
            "new-session", "-d", "-s", SESSION, "-x", str(WIDTH), "-y", str(HEIGHT),
            "-c", str(workdir), "-e", "TERM=xterm-256color", "sh", "-c", f"{app}; sleep 600",
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while "ready: F5 launches this command" not in tmux.capture():
            assert time.monotonic() < deadline, tmux.capture()
            time.sleep(0.3)
        tmux.send("F5")
        paths = _the_run(workdir)
        pane_pid = tmux.pid("pane_pid")
        tui = [
            process
            for process in psutil.Process(pane_pid).children()
            if "vlm_tui" in " ".join(process.cmdline())
        ]
        assert len(tui) == 1, tui
        _kill_9(tui[0])
        assert (read_json(paths.status) or {}).get("state") == "running"
        _wait_for_end(paths)
    finally:
        tmux.kill()
        shutil.rmtree(socket_dir, ignore_errors=True)
    _check_the_whole_history(paths, workdir)
    # Every line a direct run of the same command prints is in train.log, and it ends alike.
    # Only what is lost is a failure: the training's own output varies with timing (a warning
    # from its data-loader worker may land inside another line, a cold cache adds a line).
    direct = _said(_direct_run(paths, tmp_path / "direct"))
    logged = _said(paths.log.read_text(errors="replace"))
    output = Path(str((read_json(paths.status) or {})["output_dir"]))
    # Each run's own folders (output before the folder that holds it) read alike.
    folders = (output, paths.root, tmp_path / "direct" / "direct-output", tmp_path / "direct")
    lost = _lost_lines(
        [_normalised(line, *folders) for line in direct],
        [_normalised(line, *folders) for line in logged],
    )
    assert not lost, "train.log lacks lines a direct run printed:\n" + "\n".join(lost)
    assert _normalised(logged[-1], *folders) == _normalised(direct[-1], *folders)


def test_kill_9_of_no_ui_mid_run_loses_nothing(demo_cache: Path, tmp_path: Path) -> None:
    env = clean_environ({"VLM_TUI_CACHE_DIR": str(demo_cache)})
    headless = subprocess.Popen(
        [sys.executable, "-m", "vlm_tui", "--no-ui", "--demo"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        paths = _the_run(tmp_path)
        headless.send_signal(signal.SIGKILL)
        assert headless.wait(timeout=10) == -signal.SIGKILL
        _wait_for_end(paths)
    finally:
        if headless.poll() is None:
            os.kill(headless.pid, signal.SIGKILL)
    _check_the_whole_history(paths, tmp_path)
    assert (
        paths.log.read_text()
        .rstrip()
        .endswith(
            f"Model successfully saved to {read_json(paths.status)['output_dir']}"  # type: ignore[index]
        )
    )


def test_ctrl_c_with_detach_leaves_the_run_going(demo_cache: Path, tmp_path: Path) -> None:
    env = clean_environ({"VLM_TUI_CACHE_DIR": str(demo_cache)})
    headless = start_cli(["--no-ui", "--demo", "--detach"], tmp_path, env)
    try:
        paths = _the_run(tmp_path)
        headless.send_signal(signal.SIGINT)  # what Ctrl+C in its terminal sends
        printed, _ = headless.communicate(timeout=30)
    finally:
        if headless.poll() is None:
            headless.kill()
    assert headless.returncode == 130, printed[-2000:]
    assert f"[vlm-tui] follow it again with: vlm-tui attach {paths.run_id}" in printed
    assert "stopping" not in printed
    status = _wait_for_end(paths)
    assert status["state"] == "finished" and status["exit_code"] == 0
