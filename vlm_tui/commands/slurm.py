"""`vlm-tui slurm`: a SLURM job for a run, written into a new run folder and submitted.

The run's flags are those of `vlm-tui --no-ui`; every value is checked here first, so a bad one
is one line naming the flag, exit 2, and no folder. The job's step runs `vlm-tui --no-ui` with
the same flags on every node (core/launch/slurm_job.py writes the script).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vlm_tui.commands.common import OneLineParser, given, spellings
from vlm_tui.commands.run import add_field_flags
from vlm_tui.core.errors import SetupError, UserError
from vlm_tui.core.request.settings import (
    FIELDS,
    check_consistency,
    config_file,
    int_in,
    settings_from_values,
)

# `vlm-tui --no-ui`'s own switches a job passes on to every node.
PASSED_SWITCHES = ("demo", "overwrite", "resume", "skip_check", "skip_bad_rows")
SBATCH = "sbatch"


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="vlm-tui slurm",
        allow_abbrev=False,
        description="Write a SLURM job for a run into a new run folder (runs/<run>/job.sbatch)"
        " and submit it with --submit. Every node runs `vlm-tui --no-ui` with the run's flags,"
        " in this folder, which must be shared by the nodes.",
    )
    job = parser.add_argument_group("the job")
    job.add_argument("--nodes", metavar="N", default="1", help="nodes (default 1)")
    job.add_argument(*spellings("cpus_per_node"), metavar="N", help="CPU cores on each node")
    job.add_argument(*spellings("mem_per_node"), metavar="SIZE", help="memory on each node: 256G")
    job.add_argument("--partition", metavar="NAME", help="the partition (queue)")
    job.add_argument("--account", metavar="NAME", help="the account charged")
    job.add_argument("--qos", metavar="NAME", help="the quality of service")
    job.add_argument("--time", metavar="LIMIT", help="the time limit: 90, 4:00:00, 2-00:00:00")
    job.add_argument(
        *spellings("sbatch_line"),
        metavar="OPTION",
        action="append",
        default=[],
        help="an extra #SBATCH line, e.g. --constraint=a100 (repeatable)",
    )
    job.add_argument(
        "--requeue",
        action="store_true",
        help="let SLURM put the job back in the queue after preemption or a node failure",
    )
    job.add_argument("--submit", action="store_true", help="submit the job with sbatch")
    job.add_argument(
        *spellings("dry_run"),
        action="store_true",
        help="write the job script and print it; submit nothing (the default without --submit)",
    )
    run = parser.add_argument_group("the run (as `vlm-tui --no-ui` takes them)")
    run.add_argument("--demo", action="store_true", help="the embedded tiny VLM and dataset")
    run.add_argument(*spellings("config"), metavar="FILE", help="start from an axolotl YAML")
    run.add_argument("--overwrite", action="store_true", help="allow an output folder with files")
    run.add_argument("--resume", action="store_true", help="go on from the newest checkpoint")
    run.add_argument(*spellings("skip_check"), action="store_true", help="skip the schema check")
    run.add_argument(
        *spellings("skip_bad_rows"), action="store_true", help="train on a dataset's good rows"
    )
    add_field_flags(parser)
    return parser


def _checked(flag: str, check: Callable[[str], Any], value: str | None) -> Any:
    if value is None:
        return None
    try:
        return check(value)
    except ValueError as error:
        raise UserError(f"--{flag}", str(error)) from None


def run_arguments(options: argparse.Namespace, output_name: str | None) -> list[str]:
    """The flags every node's `vlm-tui --no-ui` gets: the ones given here, as given."""
    values = given(options)
    if output_name is not None:
        values["output_model_name"] = output_name
    argv = [f"--{name}" for name in PASSED_SWITCHES if getattr(options, name)]
    if options.config is not None:
        argv += ["--config", str(Path(options.config).expanduser())]
    for spec in FIELDS:
        if spec.name not in values:
            continue
        value = values[spec.name]
        if spec.is_flag:
            argv.append(f"--{spec.name}" if value else f"--no-{spec.name.replace('_', '-')}")
        else:
            argv += [f"--{spec.name}", str(value)]
    return argv


def execute(options: argparse.Namespace) -> int:
    from vlm_tui.core.launch import slurm_job
    from vlm_tui.core.launch.steps import (
        DEMO_OUTPUT_NAME,
        first_free_output_name,
        newest_output_name,
    )
    from vlm_tui.core.records.folder import RUNS_FOLDER, create_run_folder, utc_now

    nodes = _checked("nodes", int_in(1, 4096), options.nodes)
    cpus = _checked("cpus_per_node", int_in(1, 100_000), options.cpus_per_node)
    memory = _checked("mem_per_node", slurm_job.memory, options.mem_per_node)
    partition = _checked("partition", slurm_job.partitions, options.partition)
    account = _checked("account", slurm_job.slurm_name, options.account)
    qos = _checked("qos", slurm_job.slurm_name, options.qos)
    limit = _checked("time", slurm_job.time_limit, options.time)
    extra = [_checked("sbatch_line", slurm_job.sbatch_option, line) for line in options.sbatch_line]
    if options.submit and options.dry_run:
        raise UserError("dry_run", "cannot be combined with --submit: pick one")
    settings = settings_from_values(given(options), require_data=False)
    if options.config is not None:
        if options.demo:
            raise UserError("config", "cannot be combined with --demo")
        try:
            config_file(options.config)
        except ValueError as error:
            raise UserError("config", str(error)) from None
    else:
        check_consistency(settings, require_data=not options.demo)
    if options.resume and options.overwrite:
        raise UserError("resume", "cannot be combined with --overwrite: pick one")
    sbatch = shutil.which(SBATCH)
    if options.submit and sbatch is None:
        raise SetupError("sbatch is not on PATH: submit from a SLURM login node, or use --dry-run")
    workdir = Path.cwd()
    output_name = settings.output_model_name or None
    if options.demo and output_name is None:
        # Fixed now, so every node trains into the same folder whichever starts first.
        pick = newest_output_name if options.resume else first_free_output_name
        output_name = pick(DEMO_OUTPUT_NAME, workdir)
    job_name = output_name or (Path(options.config).stem if options.config else "vlm-tui")
    paths = create_run_folder(workdir / RUNS_FOLDER, job_name, utc_now())
    job = slurm_job.JobRequest(
        run_id=paths.run_id,
        job_name=job_name,
        nodes=nodes,
        workdir=workdir,
        vlm_tui=_this_vlm_tui(),
        run_args=run_arguments(options, output_name if options.demo else None),
        gpus_per_node=settings.gpus_per_node,
        cpus_per_node=cpus,
        mem_per_node=memory,
        partition=partition,
        account=account,
        qos=qos,
        time_limit=limit,
        requeue=options.requeue,
        extra_options=extra,
    )
    script = paths.root / slurm_job.JOB_SCRIPT_NAME
    script.write_text(slurm_job.job_script(job), encoding="utf-8")
    shown = _shown(script, workdir)
    if not options.submit:
        print(script.read_text(encoding="utf-8"), end="")
        print(f"[vlm-tui] job script written to {shown}; submit it with: sbatch {shown}")
        return 0
    assert sbatch is not None
    return _submit(sbatch, script, paths, workdir)


def _submit(sbatch: str, script: Path, paths: Any, workdir: Path) -> int:
    from vlm_tui.core.records.folder import iso, utc_now
    from vlm_tui.core.records.job_file import write_job_record

    shown = _shown(script, workdir)
    done = subprocess.run(
        [sbatch, "--parsable", str(script)],
        cwd=workdir,
        capture_output=True,
        text=True,
        check=False,
    )
    answer = done.stdout.strip().split(";")[0]
    if done.returncode != 0 or not answer.isdigit():
        said = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
        raise SetupError(f"sbatch refused the job ({said}); the script stays in {shown}")
    write_job_record(
        paths,
        {
            "scheduler": "slurm",
            "job_id": answer,
            "cluster": done.stdout.strip().partition(";")[2] or None,
            "submitted_at": iso(utc_now()),
            "script": str(script),
            "run_id": paths.run_id,
        },
    )
    print(f"[vlm-tui] job script: {shown}")
    print(f"[vlm-tui] submitted job {answer}: run {paths.run_id}")
    print(
        f"[vlm-tui] follow it: squeue -j {answer}; its output:"
        f" {_shown(paths.root, workdir)}/slurm-{answer}.out;"
        f" once it runs: vlm-tui attach {paths.run_id}"
    )
    return 0


def _this_vlm_tui() -> list[str]:
    """This very install of vlm-tui, by absolute path: the nodes run what was submitted."""
    beside = Path(sys.executable).parent / "vlm-tui"
    return [str(beside)] if beside.is_file() else [sys.executable, "-m", "vlm_tui"]


def _shown(path: Path, workdir: Path) -> str:
    try:
        return str(path.relative_to(workdir))
    except ValueError:
        return str(path)
