"""`vlm-tui attach [JOB_OR_RUN]`: watch a run again, in the TUI or in the terminal; a SLURM
job's run (a job id, or a run folder holding job.json) from its place in the queue on."""

from __future__ import annotations

import argparse

from vlm_tui.commands.common import find_job_or_run, run_parser, spellings, tui


def build_parser() -> argparse.ArgumentParser:
    parser = run_parser("attach")
    parser.add_argument(*spellings("no_ui"), action="store_true", help="follow in the terminal")
    parser.add_argument("--theme", metavar="NAME", help="TUI colours")
    return parser


def execute(options: argparse.Namespace) -> int:
    from vlm_tui.core.runs.job_runs import job_id_of

    paths = find_job_or_run(options.run)
    job_id = job_id_of(paths)
    if options.no_ui:
        from vlm_tui import headless

        if job_id is not None:
            return headless.attach_job(paths, job_id)
        return headless.attach(paths)
    return tui(options, None, attach_to=paths)
