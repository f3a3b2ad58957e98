"""A run that updated no weight ends "failed" with cause and fix, not as a plain success.

The training here is a script printing what axolotl prints when every label is masked (real
supervisor, real `attach --no-ui`); the parsing of those lines has its own tests.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from tests.helpers import REPO, clean_environ, run_cli, script_run
from vlm_tui.core import launch
from vlm_tui.core.command import LaunchPlan
from vlm_tui.core.run_record import read_json

MASKED_TRAINING = """
for step in range(1, 5):
    print(f"{{'loss': '0', 'grad_norm': '0', 'learning_rate': '0.01', 'tokens/trainable': 0,"
          f" 'tokens/total': 156, 'epoch': '{step / 4}'}}", flush=True)
print("{'train_runtime': '0.25', 'train_loss': '0', 'epoch': '1'}", flush=True)
"""


def test_a_run_whose_labels_were_all_masked_is_reported_failed(tmp_path: Path) -> None:
    paths = script_run(tmp_path / "run", textwrap.dedent(MASKED_TRAINING))
    supervisor = launch.start_supervisor(
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
