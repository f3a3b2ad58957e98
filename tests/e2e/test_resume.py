"""Resume: a stopped demo run goes on from its newest checkpoint, its step count with it."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from tests.helpers import clean_environ, run_cli, start_cli
from vlm_tui.core.records.folder import read_json
from vlm_tui.core.runs.checkpoints import newest_checkpoint

pytestmark = pytest.mark.e2e

# Long enough that the stop lands mid-training on a busy machine: the demo's steps take about
# 40 ms, so 32 of them could end before a stop sent after the first checkpoint arrived.
EPOCHS = 10
STEPS = 16 * EPOCHS
SAVE_EVERY = ["--save_strategy", "steps", "--save_steps", "4", "--num_epochs", str(EPOCHS)]


def _train_steps(run: Path) -> list[int]:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [record["step"] for record in records if record["kind"] == "train"]


def test_resume_after_a_stop_continues_the_step_count(demo_cache: Path, tmp_path: Path) -> None:
    env = clean_environ({"VLM_TUI_CACHE_DIR": str(demo_cache)})
    output = tmp_path / "outputs" / "vlm-tui-demo"
    first = start_cli(["--no-ui", "--demo", *SAVE_EVERY], tmp_path, env)
    try:
        deadline = time.monotonic() + 300
        # A complete checkpoint: stopping in the middle of the first save would leave none.
        while newest_checkpoint(output) is None:
            assert first.poll() is None, first.communicate()[0][-3000:]
            assert time.monotonic() < deadline, "no checkpoint was saved"
            time.sleep(0.02)
        first.send_signal(signal.SIGINT)  # Ctrl+C: a graceful stop
        printed, _ = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
    assert "[vlm-tui] stopping gracefully" in printed
    stopped_run = sorted((tmp_path / "runs").iterdir())[0]
    status = read_json(stopped_run / "status.json") or {}
    assert status["state"] == "stopped", status
    done_steps = _train_steps(stopped_run)
    assert done_steps and done_steps[-1] < STEPS
    newest = newest_checkpoint(output)
    assert newest is not None
    step, _ = newest
    assert step <= done_steps[-1]

    resumed = run_cli(["--no-ui", "--demo", "--resume", *SAVE_EVERY], tmp_path, env)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr
    resumed_run = sorted((tmp_path / "runs").iterdir())[-1]
    assert resumed_run != stopped_run
    command = read_json(resumed_run / "command.json") or {}
    assert command["start_step"] == step
    assert f"checkpoint-{step}" in (resumed_run / "config.yml").read_text()
    # The steps go on from the checkpoint to the end, each once.
    assert _train_steps(resumed_run) == list(range(step + 1, STEPS + 1))
    final = read_json(resumed_run / "status.json") or {}
    assert final["state"] == "finished"
    assert final["progress"]["step"] == final["progress"]["total"] == STEPS
