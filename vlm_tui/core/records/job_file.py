"""A scheduler's job and the run folder it records into.

`vlm-tui slurm` creates the run folder, writes the job script into it and, once submitted,
`job.json` (the job id, when, how). The script names that folder to every node through
VLM_TUI_RUN_ID: node 0 records its run into it, node k into `node<k>/` inside it, so one run
folder holds every node's records, whichever node starts first.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vlm_tui.core.errors import UserError
from vlm_tui.core.records.folder import RunPaths, read_json, write_json_atomic
from vlm_tui.core.records.job_attempt import continue_in_folder

RUN_ID_VARIABLE = "VLM_TUI_RUN_ID"
# Set ("1") by the job script when the run folder already held a recorded run as the job
# started: a requeued or re-submitted job, whose every node goes on in the same folder from the
# newest complete checkpoint. Decided once, before any node starts, so all nodes agree.
JOB_RESUMES_VARIABLE = "VLM_TUI_JOB_RESUMES"
JOB_RECORD_NAME = "job.json"


def job_record_path(paths: RunPaths) -> Path:
    return paths.root / JOB_RECORD_NAME


def write_job_record(paths: RunPaths, record: dict[str, Any]) -> None:
    write_json_atomic(job_record_path(paths), record)


def read_job_record(paths: RunPaths) -> dict[str, Any] | None:
    return read_json(job_record_path(paths))


def node_folder(job_root: Path, node_rank: int) -> Path:
    """Where a node of a job records its run: node 0 in the job's folder, node k inside it."""
    return job_root if node_rank == 0 else job_root / f"node{node_rank}"


def job_resumes(environ: Mapping[str, str]) -> bool:
    """Whether this is a later attempt of a job whose run folder holds an earlier one."""
    return bool(environ.get(RUN_ID_VARIABLE)) and environ.get(JOB_RESUMES_VARIABLE) == "1"


def claim_job_folder(
    runs_root: Path, run_id: str, node_rank: int, *, resume_from: int | None = None
) -> RunPaths:
    """This node's run folder in the job's run folder `runs_root/run_id`; one that holds a
    recorded run only for a later attempt of the job (`resume_from`: the step it goes on from)."""
    if run_id in (".", "..") or "/" in run_id or "\\" in run_id or not run_id.strip():
        raise UserError(RUN_ID_VARIABLE, f"must name one folder under runs/, not {run_id!r}")
    root = node_folder(runs_root / run_id, node_rank)
    paths = RunPaths(root)
    if (paths.command.exists() or paths.status.exists()) and resume_from is not None:
        continue_in_folder(paths, resume_from)
    elif paths.command.exists() or paths.status.exists():
        raise UserError(
            RUN_ID_VARIABLE,
            f"{root} already holds a recorded run; a job's nodes record into a fresh run folder",
        )
    root.mkdir(parents=True, exist_ok=True)
    return paths
