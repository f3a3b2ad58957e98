"""Which SLURM job a RUN argument names, and which run folder a node of that job records into.

`vlm-tui slurm --submit` writes job.json into the run folder it makes; until node 0 starts
there is nothing else in it, so such folders are found here, by the job id or by name, and not
by the run index (which lists recorded runs).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from vlm_tui.core.records.folder import RunPaths
from vlm_tui.core.records.job_file import job_record_path, node_folder, read_job_record


def job_id_of(paths: RunPaths) -> str | None:
    """The SLURM job id the run folder's job.json records, if any."""
    record = read_job_record(paths)
    if record is None or record.get("scheduler") != "slurm":
        return None
    job_id = record.get("job_id")
    return job_id if isinstance(job_id, str) and job_id.isdigit() else None


def _job_folders(runs_root: Path) -> list[RunPaths]:
    try:
        entries = sorted(runs_root.iterdir())
    except OSError:
        return []
    return [RunPaths(entry) for entry in entries if job_record_path(RunPaths(entry)).is_file()]


def find_job_folder(runs_root: Path, query: str) -> RunPaths | None:
    """The job folder `query` names: a job id, a folder path, a folder name or a unique part of
    one; None when it names none (or several: the run lookup then says which)."""
    as_path = Path(query).expanduser()
    if job_record_path(RunPaths(as_path)).is_file():
        return RunPaths(as_path.resolve())
    folders = _job_folders(runs_root)
    if query.isdigit():
        by_job = [paths for paths in folders if job_id_of(paths) == query]
        if by_job:
            return by_job[-1]
    exact = [paths for paths in folders if paths.run_id == query]
    matches = exact or [paths for paths in folders if query in paths.run_id]
    return matches[0] if len(matches) == 1 else None


def this_node_folder(paths: RunPaths, environ: Mapping[str, str]) -> RunPaths | None:
    """Inside the job `paths` records (its own SLURM_JOB_ID), this node's run folder; None
    elsewhere (the login node)."""
    job_id = job_id_of(paths)
    if job_id is None or environ.get("SLURM_JOB_ID") != job_id:
        return None
    node = environ.get("SLURM_NODEID", "0")
    return RunPaths(node_folder(paths.root, int(node) if node.isdigit() else 0))
