"""A run that updated no weight ends "failed" with cause and fix, not as a plain success.

The training here is a script printing what axolotl prints when every label is masked (real
supervisor, real `attach --no-ui`); the parsing of those lines has its own tests.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO, clean_environ, run_cli, script_run
from vlm_tui.core.launch import steps
from vlm_tui.core.launch.command import LaunchPlan
from vlm_tui.core.records.folder import read_json

MASKED_TRAINING = """
for step in range(1, 5):
    print(f"{{'loss': '0', 'grad_norm': '0', 'learning_rate': '0.01', 'tokens/trainable': 0,"
          f" 'tokens/total': 156, 'epoch': '{step / 4}'}}", flush=True)
print("{'train_runtime': '0.25', 'train_loss': '0', 'epoch': '1'}", flush=True)
"""


def test_a_run_whose_labels_were_all_masked_is_reported_failed(tmp_path: Path) -> None:
    paths = script_run(tmp_path / "run", textwrap.dedent(MASKED_TRAINING))
    supervisor = steps.start_supervisor(
        paths, LaunchPlan(argv=(), env=clean_environ(), cwd=str(REPO))
    )
    assert supervisor.wait(timeout=60) == 0
    status = read_json(paths.status) or {}
    assert status["state"] == "failed" and status["exit_code"] == 0, status
    assert status["reason"] == "nothing was trained", status
    assert status["hint"] == "nothing_trained", status
    assert "no token carried a label" in status["cause"], status
    assert "assistant turn" in status["fix"], status
    done = run_cli(["attach", "--no-ui", str(paths.root)], tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "[vlm-tui] failed (exit 0)" in done.stdout, done.stdout
    assert "[vlm-tui] cause: no token carried a label" in done.stdout, done.stdout
    assert "[vlm-tui] fix: check that every row has an assistant turn" in done.stdout


@pytest.mark.e2e
def test_a_real_training_whose_labels_are_all_masked_is_reported_failed(
    demo_cache: Path, tmp_path: Path
) -> None:
    """Real axolotl, the demo's model and data, and role markers its template never renders:
    no token is an answer's, so every label is masked."""
    env = clean_environ({"VLM_TUI_CACHE_DIR": str(demo_cache)})
    built = subprocess.run(
        [sys.executable, "-m", "vlm_tui.training.demo_builder", "build", str(demo_cache / "demo")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    planned = run_cli(["--no-ui", "--demo", "--dry-run"], tmp_path, env)
    assert planned.returncode == 0, planned.stdout + planned.stderr
    (written,) = (tmp_path / "runs").glob("*/config.yml")
    config = yaml.safe_load(written.read_text(encoding="utf-8"))
    config["role_boundaries"] = [{"role": "assistant", "start": "NOWHERE:"}]
    config["datasets"][0]["path"] = str(demo_cache / "demo" / "v1" / "data" / "demo.jsonl")
    config["num_epochs"] = 1
    masked = tmp_path / "masked.yml"
    masked.write_text(yaml.safe_dump(config), encoding="utf-8")
    done = run_cli(["--no-ui", "--config", str(masked)], tmp_path, env)
    printed = done.stdout + done.stderr
    assert done.returncode == 1, printed[-3000:]
    assert "reason: nothing was trained" in printed, printed[-3000:]
    assert "cause: no token carried a label" in printed, printed[-3000:]
    statuses = [read_json(run / "status.json") or {} for run in (tmp_path / "runs").iterdir()]
    (status,) = [status for status in statuses if status.get("state") == "failed"]
    assert status["reason"] == "nothing was trained", status
    assert status["steps"] >= 1 and status["model_saved_to"], status
