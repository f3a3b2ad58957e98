"""`vlm-tui slurm --submit` on a real two-node SLURM on 127.0.0.1 (tests/slurm_cluster.py).

The demo trains on both nodes (gloo, one process a node), each node's vlm-tui started by the
job's srun step; every record lands in the one run folder the submission made.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.helpers import run_cli, train_steps
from tests.slurm_cluster import SlurmCluster
from vlm_tui.core.launch.demo import demo_asset_paths, demo_cache_root
from vlm_tui.core.launch.steps import build_demo_in_child

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("slurm")]

MAX_STEPS = 6
# A bound on waiting for the job, far above what it needs; never a speed target.
JOB_BOUND_S = 900.0


def _job_fields(cluster: SlurmCluster, job_id: str) -> dict[str, str]:
    done = cluster.command("scontrol", "--oneliner", "show", "job", job_id)
    return dict(word.split("=", 1) for word in done.stdout.split() if "=" in word)


def test_a_submitted_two_node_demo_job_trains_one_model_into_one_run_folder(
    slurm_cluster: SlurmCluster, demo_cache: Path, tmp_path: Path
) -> None:
    env = slurm_cluster.env({"VLM_TUI_CACHE_DIR": str(demo_cache), "HF_HUB_OFFLINE": "1"})
    # Built once here: two nodes building it at once is safe (the builder renames a finished
    # build into place) but would spend a core each on the same work.
    build_demo_in_child(demo_asset_paths(demo_cache_root(env)), env)
    started = time.monotonic()
    args = ["slurm", "--nodes", "2", "--submit", "--demo", "--max_steps", str(MAX_STEPS)]
    done = run_cli([*args, "--rendezvous_timeout", "300"], tmp_path, env)
    assert done.returncode == 0, done.stdout + done.stderr
    (run,) = (tmp_path / "runs").iterdir()
    job = json.loads((run / "job.json").read_text())
    job_id = job["job_id"]
    assert f"submitted job {job_id}: run {run.name}" in done.stdout
    assert f"vlm-tui attach {run.name}" in done.stdout

    deadline = time.monotonic() + JOB_BOUND_S
    while slurm_cluster.command("squeue", "--noheader", "--jobs", job_id).stdout.strip():
        assert time.monotonic() < deadline, slurm_cluster.logs()
        time.sleep(1)
    print(f"slurm job {job_id}: submit to end {time.monotonic() - started:.1f} s")
    fields = _job_fields(slurm_cluster, job_id)
    job_output = (run / f"slurm-{job_id}.out").read_text(errors="replace")
    assert (fields["JobState"], fields["ExitCode"]) == ("COMPLETED", "0:0"), job_output[-4000:]
    assert fields["NodeList"] == "n[1-2]"

    # Both nodes trained one model together: world size 2, rank 0 and rank 1.
    assert job_output.count("[INFO] World size: 2") == 2
    assert "[INFO] Global rank: 0" in job_output and "[INFO] Global rank: 1" in job_output
    assert train_steps(run) == list(range(1, MAX_STEPS + 1))
    # One run folder holds both nodes' records and telemetry.
    node1 = run / "node1"
    assert json.loads((run / "status.json").read_text())["state"] == "finished"
    node1_status = json.loads((node1 / "status.json").read_text())
    assert node1_status["state"] == "finished"
    assert node1_status["cluster_run"] == run.name
    assert "[INFO] Global rank: 1" in (node1 / "train.log").read_text(errors="replace")
    telemetry = sorted(path.name.split("-")[0] for path in (run / "telemetry").glob("*.jsonl"))
    assert telemetry == ["node0", "node1"]
    # Only node 0 wrote the output folder: one model, in one place.
    assert [path.name for path in (tmp_path / "outputs").iterdir()] == ["vlm-tui-demo"]
    assert (tmp_path / "outputs" / "vlm-tui-demo" / "adapter_model.safetensors").is_file()
    assert node1_status["output_dir"] == str(node1 / "node-output")
