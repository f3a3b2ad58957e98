"""`vlm-tui runs`, `attach --no-ui`, `stop`, and `--resume` planning, on real run folders.

Run folders here are recorded by hand (tests/recorded_runs.py) or by a real supervisor whose
"training" is a short Python child; nothing trains.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import clean_environ, run_cli
from tests.recorded_runs import record_output
from vlm_tui.core.errors import UserError
from vlm_tui.core.records.folder import RunPaths, read_json, write_json_atomic
from vlm_tui.core.runs.checkpoints import newest_checkpoint
from vlm_tui.core.runs.run_index import find_run, run_folders, summarise, table_lines
from vlm_tui.headless import exit_code_of

OUTPUT = (
    "".join(
        f"{{'loss': {7.0 / step:.4f}, 'learning_rate': 0.01, 'epoch': {step / 10}}}\n"
        for step in range(1, 11)
    )
    + "[axolotl.train] Training completed!\n"
)


def recorded(runs: Path, name: str, state: str = "finished", code: int = 0) -> RunPaths:
    paths = RunPaths(runs / name)
    paths.root.mkdir(parents=True)
    write_json_atomic(paths.command, {"argv": ["python"], "logging_steps": 1, "start_step": 0})
    status = {
        "state": state,
        "exit_code": code,
        "started_at": "2026-11-24T10:00:00.000Z",
        "ended_at": "2026-11-24T10:01:05.000Z",
    }
    record_output(paths, OUTPUT, status)
    return paths


def live_run(
    runs: Path, name: str, seconds: float = 30
) -> tuple[RunPaths, subprocess.Popen[bytes]]:
    """A real supervisor running a child that prints a loss a step and then waits."""
    paths = RunPaths(runs / name)
    paths.root.mkdir(parents=True)
    child = (
        "import time\n"
        "for step in range(1, 4):\n"
        "    print({'loss': 1.0 / step, 'learning_rate': 0.01}, flush=True)\n"
        f"time.sleep({seconds})\n"
    )
    write_json_atomic(
        paths.command,
        {"argv": [sys.executable, "-c", child], "cwd": str(runs), "logging_steps": 1},
    )
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "vlm_tui.core.supervise.supervisor", str(paths.root)],
        env=clean_environ(),
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = read_json(paths.status) or {}
        metrics = paths.metrics.read_text() if paths.metrics.exists() else ""
        if status.get("state") == "running" and metrics.count("\n") >= 3:
            break
        time.sleep(0.05)
    else:
        supervisor.kill()
        raise AssertionError("the supervisor did not start its child")
    return paths, supervisor


def test_find_run_by_path_name_or_unique_part(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    first = recorded(runs, "20261124T100000Z-alpha")
    second = recorded(runs, "20261124T110000Z-beta")
    assert find_run(runs, None) == second  # nothing live: the newest
    assert find_run(runs, "alpha") == first
    assert find_run(runs, "20261124T110000Z-beta") == second
    assert find_run(runs, str(first.root)) == RunPaths(first.root.resolve())
    with pytest.raises(UserError, match="matches 2 runs"):
        find_run(runs, "20261124")
    with pytest.raises(UserError, match="no run matches 'gamma'"):
        find_run(runs, "gamma")
    with pytest.raises(UserError, match="must not be empty"):
        find_run(runs, " ")
    with pytest.raises(UserError, match="no runs under"):
        find_run(tmp_path / "elsewhere", None)


def test_a_run_whose_supervisor_is_gone_reads_as_lost(tmp_path: Path) -> None:
    paths = recorded(tmp_path / "runs", "gone", state="running", code=0)
    status = read_json(paths.status) or {}
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    write_json_atomic(paths.status, {**status, "exit_code": None, "supervisor_pid": dead.pid})
    summary = summarise(paths)
    assert summary.state == "lost"
    assert not summary.live


def test_runs_lists_state_steps_losses_and_runtime(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    recorded(runs, "20261124T100000Z-alpha")
    recorded(runs, "20261124T110000Z-beta", state="failed", code=1)
    lines = table_lines([summarise(paths) for paths in run_folders(runs)])
    assert lines[0].split() == [
        "RUN",
        "STATE",
        "STEPS",
        "PROCESSES",
        "SAMPLES/S",
        "FIRST",
        "LOSS",
        "LAST",
        "LOSS",
        "BEST",
        "EVAL",
        "RUNTIME",
    ]
    # command.json names no topology, the output no summary and no evaluation: unknown, not
    # made up.
    assert lines[1].split() == [
        "20261124T100000Z-alpha",
        "finished",
        "(0)",
        "10",
        "?",
        "-",
        "7",
        "0.7",
        "-",
        "0:01:05",
    ]
    assert lines[2].split()[1:3] == ["failed", "(1)"]
    done = run_cli(["runs"], tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == lines


def test_attach_no_ui_prints_a_finished_runs_whole_history_and_its_code(tmp_path: Path) -> None:
    recorded(tmp_path / "runs", "20261124T100000Z-failed", state="failed", code=3)
    done = run_cli(["attach", "--no-ui", "failed"], tmp_path)
    assert done.returncode == 3, done.stderr
    printed = done.stdout.splitlines()
    assert sum("'loss'" in line for line in printed) == 10
    assert "[axolotl.train] Training completed!" in printed
    assert any(line.startswith("[vlm-tui] failed (exit 3)") for line in printed)
    assert "loss 7 -> 0.7" in done.stdout


def test_attach_and_stop_reach_a_live_run_started_elsewhere(tmp_path: Path) -> None:
    paths, supervisor = live_run(tmp_path / "runs", "20261124T100000Z-live")
    try:
        assert summarise(paths).live
        assert find_run(tmp_path / "runs", None) == paths
        attach = subprocess.Popen(
            [sys.executable, "-m", "vlm_tui", "attach", "--no-ui"],
            cwd=tmp_path,
            env=clean_environ(),
            stdout=subprocess.PIPE,
            text=True,
        )
        stopped = run_cli(["stop", "live"], tmp_path)
        assert stopped.returncode == 0, stopped.stderr
        assert "stopping 20261124T100000Z-live gracefully" in stopped.stdout
        out, _ = attach.communicate(timeout=60)
        # The child ignores nothing: SIGINT ends it, and attach exits with its code.
        supervisor.wait(timeout=30)
        status = read_json(paths.status) or {}
        assert status["state"] == "stopped"
        assert status["stop_requested"] == "graceful"
        assert attach.returncode == exit_code_of(status) != 0
        assert out.count("'loss'") == 3
        assert "[vlm-tui] stopped" in out
        again = run_cli(["stop", "live"], tmp_path)
        assert again.returncode == 1
        assert "is not running (stopped)" in again.stdout
    finally:
        if supervisor.poll() is None:
            supervisor.kill()


BAD_RUN_COMMANDS = [
    (["attach", "--no-ui", "nothing-like-it"], "RUN: no run matches 'nothing-like-it'"),
    (["stop", ""], "RUN: must not be empty"),
    (["attach", "--no-ui", "a", "b"], "unrecognized arguments: b"),
    (["runs", "--bogus"], "unrecognized arguments: --bogus"),
    (["--no-ui", "--dry-run", "--demo", "--resume", "--overwrite"], "--resume: cannot be combined"),
    (["--detach", "--demo"], "--detach: only applies with --no-ui"),
]


@pytest.mark.parametrize(
    ("args", "message"), BAD_RUN_COMMANDS, ids=[" ".join(a) for a, _ in BAD_RUN_COMMANDS]
)
def test_bad_run_commands_exit_2_with_one_line(
    args: list[str], message: str, tmp_path: Path
) -> None:
    recorded(tmp_path / "runs", "20261124T100000Z-alpha")
    before = sorted(path.name for path in (tmp_path / "runs").iterdir())
    done = run_cli(args, tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert sorted(path.name for path in (tmp_path / "runs").iterdir()) == before


def test_newest_checkpoint_is_the_highest_step(tmp_path: Path) -> None:
    assert newest_checkpoint(tmp_path / "missing") is None
    for name in ("checkpoint-8", "checkpoint-16", "checkpoint-100x", "other"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "trainer_state.json").write_text("{}")
    (tmp_path / "checkpoint-99").write_text("a file, not a checkpoint")
    # A save cut short (no trainer_state.json yet) is passed over.
    (tmp_path / "checkpoint-24").mkdir()
    (tmp_path / "checkpoint-24" / "adapter_model.safetensors").write_text("partial")
    assert newest_checkpoint(tmp_path) == (16, tmp_path / "checkpoint-16")


def test_resume_plans_from_the_newest_checkpoint_and_numbers_steps_from_it(
    demo_cache: Path, tmp_path: Path
) -> None:
    env = clean_environ({"VLM_TUI_CACHE_DIR": str(demo_cache)})
    refused = run_cli(["--no-ui", "--dry-run", "--demo", "--resume"], tmp_path, env)
    assert refused.returncode == 2
    assert "--resume:" in refused.stderr
    assert "holds no complete checkpoint-N folder" in refused.stderr
    output = tmp_path / "outputs" / "vlm-tui-demo"
    for step in (4, 12):
        (output / f"checkpoint-{step}").mkdir(parents=True)
        (output / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    # Without --resume, a folder with checkpoints is never trained over.
    kept = run_cli(["--no-ui", "--dry-run", "--demo"], tmp_path, env)
    assert kept.returncode == 0, kept.stderr
    assert "vlm-tui-demo-2" in kept.stdout
    planned = run_cli(["--no-ui", "--dry-run", "--demo", "--resume"], tmp_path, env)
    assert planned.returncode == 0, planned.stderr
    folder = next(line for line in planned.stdout.splitlines() if "run folder: " in line)
    run = Path(folder.split("run folder: ", 1)[1])
    command = json.loads((run / "command.json").read_text())
    assert command["start_step"] == 12
    assert f"resume_from_checkpoint: {output / 'checkpoint-12'}" in (run / "config.yml").read_text()


@pytest.mark.parametrize("unbuffered", ["1", ""])
def test_a_reader_that_leaves_early_gets_no_traceback(tmp_path: Path, unbuffered: str) -> None:
    # `vlm-tui runs | head -1` with a long list: the pipe closes while vlm-tui still writes.
    recorded(tmp_path / "runs", "20261124T100000Z-alpha")
    env = clean_environ({"PYTHONUNBUFFERED": unbuffered})
    listing = subprocess.Popen(
        [sys.executable, "-m", "vlm_tui", "runs"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert listing.stdout is not None and listing.stderr is not None
    # Closed before the interpreter has even started: its first write finds no reader.
    listing.stdout.close()
    errors = listing.stderr.read().decode()
    assert listing.wait(timeout=60) == 141
    assert errors == ""
