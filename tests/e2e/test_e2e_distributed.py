"""Two real processes on one CPU "node" (gloo): one synchronised model, and the speed-up
`runs --compare` measures against the 1-process demo run.

Two "nodes" on 127.0.0.1 are in test_e2e_two_nodes.py.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import DEMO_STEPS_ONE_PROCESS, clean_environ, only_run, run_cli, train_steps

# One worker runs this module and test_e2e_demo.py: they share the `demo_run` training.
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("demo-run")]


@pytest.fixture(scope="module")
def two_processes(demo_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    workdir = tmp_path_factory.mktemp("two-processes")
    env = clean_environ(
        {"VLM_TUI_CACHE_DIR": str(demo_cache), "MASTER_ADDR": "localhost", "NPROC_PER_NODE": "2"}
    )
    done = run_cli(["--no-ui", "--demo"], workdir, env)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    (workdir / "stdout.txt").write_text(done.stdout)
    yield workdir


def test_two_processes_train_one_synchronised_model(two_processes: Path) -> None:
    out = (two_processes / "stdout.txt").read_text()
    assert "🌐 Detected distributed environment - using accelerate launch" in out
    assert " --multi_gpu --num_machines 1 --machine_rank 0 --num_processes 2 " in out
    assert "[INFO] World size: 2" in out
    assert "[INFO] Distributed training with 2 processes" in out
    run = only_run(two_processes)
    log = (run / "train.log").read_text(errors="replace")
    # axolotl's own config dump: the trainer saw a world of two, not two worlds of one.
    assert '"world_size": 2' in log
    # Each step takes a batch on each process: the global batch doubles, the steps halve.
    assert train_steps(run) == list(range(1, DEMO_STEPS_ONE_PROCESS // 2 + 1))
    assert log.count("Model successfully saved to") == 1
    assert (two_processes / "outputs" / "vlm-tui-demo" / "adapter_model.safetensors").is_file()
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "finished" and status["exit_code"] == 0


def test_runs_compare_shows_the_measured_speedup_beside_the_guides(
    demo_run: tuple[Path, str, int], two_processes: Path, tmp_path: Path
) -> None:
    """The 1-process demo run (tests/conftest.py) and the 2-process one, in one runs/ folder
    (run folders are self-contained), compared by `vlm-tui runs --compare`."""
    demo_workdir, output, code = demo_run
    assert code == 0, output[-3000:]
    one, two = sorted((demo_workdir / "runs").iterdir())[0], only_run(two_processes)
    for run in (one, two):
        shutil.copytree(run, tmp_path / "runs" / run.name)
    done = run_cli(["runs", "--compare"], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    samples = {
        run.name: json.loads((run / "status.json").read_text())["summary"][
            "train_samples_per_second"
        ]
        for run in (one, two)
    }
    measured = samples[two.name] / samples[one.name]
    rows: dict[str, str] = {}
    for line in done.stdout.splitlines():  # the table's row, not the loss curve's below it
        rows.setdefault(line.split(" ", 1)[0], line)
    # Same config (the output folder and the CPU placement plugin aside), 1 and 2 processes.
    config = rows[one.name].split()[1]
    assert re.search(
        rf"^{one.name} +{config} +1 .* 1\.0x \(baseline\) +1x \(baseline\)$", rows[one.name]
    )
    assert re.search(
        rf"^{two.name} +{config} +2 .* {measured:.1f}x +~1\.75x \(at 87\.5% efficiency\)$",
        rows[two.name],
    )
    print(done.stdout)  # the measured figures, for the record (pytest -s)


def test_try_answers_with_what_the_two_process_run_saved(
    two_processes: Path, demo_cache: Path
) -> None:
    """A multi-process run's weights are the ones rank 0 wrote into the run's output_dir:
    `vlm-tui try` reads them from the run's config alone, as for one process."""
    run = only_run(two_processes)
    done = run_cli(
        ["try", run.name, "--rows", "1", "--max_new_tokens", "6", "--no-ui"],
        two_processes,
        clean_environ({"VLM_TUI_CACHE_DIR": str(demo_cache)}),
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    output = two_processes / "outputs" / "vlm-tui-demo"
    assert f"adapter {output} (final weights)" in done.stdout
    assert "  fine-tuned  " in done.stdout and "  base  " in done.stdout
