"""The SLURM job script (core/launch/slurm_job.py), `vlm-tui slurm` without a cluster, and the
run folder a job's nodes share (core/records/job_file.py)."""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from tests.helpers import clean_environ, run_cli
from vlm_tui.core.errors import UserError
from vlm_tui.core.launch.slurm_job import JobRequest, job_script, sbatch_lines, time_limit
from vlm_tui.core.records.command_file import recorded_topology, write_command
from vlm_tui.core.records.folder import RunPaths, write_json_atomic
from vlm_tui.core.records.job_file import RUN_ID_VARIABLE, claim_job_folder
from vlm_tui.core.request.axolotl_config import CHECKPOINT_TRIGGER_FILE
from vlm_tui.core.supervise.node_recorder import find_master_run

# The guide's 4-node example: 4 nodes of one GPU, 5 epochs, batch 4.
GUIDE_JOB = JobRequest(
    run_id="20261202T120000Z-llava-production-v1",
    job_name="llava-production-v1",
    nodes=4,
    workdir=Path("/shared/work"),
    vlm_tui=["/shared/venv/bin/vlm-tui"],
    run_args=["--dataset_name", "data/production.jsonl", "--num_epochs", "5"],
    gpus_per_node=1,
    cpus_per_node=16,
    mem_per_node="128G",
    partition="gpu",
    account="vlm",
    qos="normal",
    time_limit="24:00:00",
    requeue=True,
    extra_options=["--exclusive"],
)


def test_every_sbatch_line_says_what_it_does_and_asks_for_one_task_a_node() -> None:
    script = job_script(GUIDE_JOB)
    options = [line for line in script.splitlines() if line.startswith("#SBATCH")]
    assert len(options) == len(sbatch_lines(GUIDE_JOB)) == 16
    assert all("  # " in line for line in options)
    for wanted in (
        "--nodes=4",
        "--ntasks-per-node=1",
        "--gpus-per-node=1",
        "--cpus-per-task=16",
        "--mem=128G",
        "--partition=gpu",
        "--account=vlm",
        "--qos=normal",
        "--time=24:00:00",
        "--signal=B:USR1@120",
        "--requeue",
        "--chdir=/shared/work",
        "--output=/shared/work/runs/20261202T120000Z-llava-production-v1/slurm-%j.out",
        "--exclusive",
    ):
        assert any(line.split()[1] == wanted for line in options), wanted


def test_the_step_runs_vlm_tui_headless_on_every_node_in_one_named_run_folder() -> None:
    script = job_script(GUIDE_JOB)
    assert "srun --kill-on-bad-exit=1 /shared/venv/bin/vlm-tui --no-ui \\\n" in script
    assert "    --dataset_name data/production.jsonl \\\n    --num_epochs 5 &\n" in script
    assert f"export {RUN_ID_VARIABLE}=20261202T120000Z-llava-production-v1\n" in script
    assert "export MASTER_PORT=$((15000 + SLURM_JOB_ID % 10000))" in script


def test_the_script_derives_the_master_from_slurm_and_ends_with_the_steps_code(
    tmp_path: Path,
) -> None:
    """Run with stand-ins for scontrol and srun on PATH: the address comes from the first
    node's NodeAddr, srun sees the run folder and the master, and the exit code is the step's."""
    bin_folder = tmp_path / "bin"
    bin_folder.mkdir()
    (bin_folder / "scontrol").write_text(
        "#!/bin/sh\n"
        'if [ "$2" = hostnames ]; then printf "gpu-07\\ngpu-08\\n"; exit 0; fi\n'
        'echo "NodeName=$3 Arch=x86_64"\n'
        'echo "   NodeAddr=10.0.0.7 NodeHostName=$3 Version=22.05.8"\n'
    )
    (bin_folder / "srun").write_text(
        '#!/bin/sh\necho "$MASTER_ADDR:$MASTER_PORT $VLM_TUI_RUN_ID $*"\nexit 3\n'
    )
    for stand_in in bin_folder.iterdir():
        stand_in.chmod(0o755)
    script = tmp_path / "job.sbatch"
    script.write_text(job_script(GUIDE_JOB))
    env = clean_environ(
        {
            "PATH": f"{bin_folder}:/usr/bin:/bin",
            "SLURM_JOB_NODELIST": "gpu-[07-08]",
            "SLURM_JOB_ID": "123456",
        }
    )
    done = subprocess.run(
        ["bash", str(script)], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 3, done.stderr
    assert done.stdout.startswith(
        "10.0.0.7:18456 20261202T120000Z-llava-production-v1 --kill-on-bad-exit=1 "
        "/shared/venv/bin/vlm-tui --no-ui --dataset_name data/production.jsonl"
    )


@pytest.mark.parametrize("good", ["90", "4:00:00", "2-00:00:00", "1-12", "UNLIMITED"])
def test_slurm_time_formats_are_accepted(good: str) -> None:
    assert time_limit(good) == good


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--nodes", "0"], "--nodes: must be a whole number from 1 to 4096"),
        (["--time", "four hours"], "--time: must be a SLURM time"),
        (["--mem_per_node", "lots"], "--mem_per_node: must be a whole number"),
        (["--partition", "gpu;rm"], "--partition: must be a partition name"),
        (["--sbatch_line", "exclusive"], "--sbatch_line: must be one sbatch option"),
        (["--batch_size", "0"], "--batch_size: must be a whole number"),
        (["--submit", "--dry-run"], "--dry_run: cannot be combined with --submit"),
        ([], "--dataset_name: is required"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_flag_exit_2_and_no_folder(
    tmp_path: Path, args: list[str], error: str
) -> None:
    done = run_cli(["slurm", *args], tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"vlm-tui: error: {error}"), lines
    assert list(tmp_path.iterdir()) == []


def test_a_dry_run_writes_and_prints_the_script_and_submits_nothing(tmp_path: Path) -> None:
    done = run_cli(["slurm", "--nodes", "2", "--demo", "--max_steps", "4", "--dry-run"], tmp_path)
    assert done.returncode == 0, done.stderr
    (run,) = (tmp_path / "runs").iterdir()
    script = (run / "job.sbatch").read_text()
    assert done.stdout.startswith(script)
    assert f"job script written to runs/{run.name}/job.sbatch" in done.stdout.splitlines()[-1]
    # The demo's output folder is fixed at submission: every node trains into the same one.
    assert "    --demo \\\n    --output_model_name vlm-tui-demo \\\n    --max_steps 4 &" in script
    assert not (run / "job.json").exists()


def test_nodes_of_a_job_record_into_its_one_run_folder(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    node0 = claim_job_folder(runs, "20261202T120000Z-demo", 0)
    node1 = claim_job_folder(runs, "20261202T120000Z-demo", 1)
    assert node0.root == runs / "20261202T120000Z-demo"
    assert node1.root == node0.root / "node1"
    topology = {"nodes": 2, "master_addr": "10.0.0.7", "master_port": 18456}
    # Node 1 finds node 0's folder (its parent) once node 0 has recorded its run there.
    own = recorded_topology({"topology": {**topology, "node_rank": 1}})
    assert find_master_run(node1, own, None) is None
    write_command(node0, {"argv": ["x"], "topology": {**topology, "node_rank": 0}})
    assert find_master_run(node1, own, None) == RunPaths(node0.root)
    # A folder that holds a recorded run is never recorded into again.
    with pytest.raises(UserError, match="already holds a recorded run"):
        claim_job_folder(runs, "20261202T120000Z-demo", 0)
    with pytest.raises(UserError, match="must name one folder under runs/"):
        claim_job_folder(runs, "../elsewhere", 0)


def test_a_later_attempt_keeps_the_earlier_ones_records_beside_its_own(tmp_path: Path) -> None:
    """Going on from step 2: metrics.jsonl keeps steps 1-2 and the new supervisor reads a
    fresh train.log (it records metrics from every line of it); each attempt's whole files
    stay beside, numbered."""
    runs = tmp_path / "runs"
    paths = claim_job_folder(runs, "20261202T120000Z-demo", 0)
    for attempt in (1, 2):
        write_command(paths, {"argv": ["x"]})
        records = [{"kind": "train", "step": step} for step in range(1, 5)]
        paths.metrics.write_text("".join(json.dumps(r) + "\n" for r in records))
        paths.log.write_text(f"attempt {attempt}: steps 1-4\n")
        paths.stop_request.write_text("{}")
        assert claim_job_folder(runs, paths.root.name, 0, resume_from=2) == paths
        assert not paths.log.exists() and not paths.stop_request.exists()
        kept = [json.loads(line)["step"] for line in paths.metrics.read_text().splitlines()]
        assert kept == [1, 2]
        earlier = paths.root / f"metrics-attempt{attempt}.jsonl"
        assert [json.loads(line) for line in earlier.read_text().splitlines()] == records
        earlier_log = paths.root / f"train-attempt{attempt}.log"
        assert earlier_log.read_text() == f"attempt {attempt}: steps 1-4\n"


def test_an_early_warning_before_node_0_made_its_output_asks_again_until_it_can(
    tmp_path: Path,
) -> None:
    """SLURM may warn before node 0's training made its output folder: the script says so and
    writes the checkpoint trigger once status.json names a folder that is there. The stand-in
    srun warns the script, makes the folder only after the script said it is not there, then
    waits (bounded) for the trigger: its exit code is the script's."""
    job = replace(GUIDE_JOB, workdir=tmp_path / "work")
    run_folder = job.workdir / "runs" / job.run_id
    run_folder.mkdir(parents=True)
    output = job.workdir / "outputs" / "llava-production-v1"
    later_status = tmp_path / "status-later.json"
    write_json_atomic(later_status, {"state": "running", "output_dir": str(output)})
    said = tmp_path / "job.out"
    bin_folder = tmp_path / "bin"
    bin_folder.mkdir()
    (bin_folder / "scontrol").write_text("#!/bin/sh\necho n1\n")
    bound = "i=0; until {ready}; do i=$((i + 1)); [ $i -lt 600 ] || exit 4; sleep 0.1; done\n"
    (bin_folder / "srun").write_text(
        "#!/bin/bash\n"
        "kill -USR1 $PPID\n"
        + bound.format(ready=f"grep -q 'not there yet' {said}")
        + f"mkdir -p {output}\nmv {later_status} {run_folder / 'status.json'}\n"
        + bound.format(ready=f"[ -e {output / CHECKPOINT_TRIGGER_FILE} ]")
    )
    for stand_in in bin_folder.iterdir():
        stand_in.chmod(0o755)
    script = tmp_path / "job.sbatch"
    script.write_text(job_script(job))
    env = clean_environ(
        {"PATH": f"{bin_folder}:/usr/bin:/bin", "SLURM_JOB_NODELIST": "n1", "SLURM_JOB_ID": "7"}
    )
    with said.open("w") as sink:
        done = subprocess.run(["bash", str(script)], env=env, stdout=sink, stderr=sink, check=False)
    assert done.returncode == 0, said.read_text()
    lines = said.read_text().splitlines()
    assert lines == [
        "[vlm-tui] SLURM: the time limit is near: asking node 0 for a checkpoint",
        "[vlm-tui] SLURM: node 0's output folder is not there yet: asking every 2 s",
    ]
