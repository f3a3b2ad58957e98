"""The SLURM job script `vlm-tui slurm` writes: text only, from checked values; runs nothing.

One task per node; the step runs `vlm-tui --no-ui` with the run's settings on every node, so
each node's vlm-tui detects its place from SLURM's variables and launches its own processes
exactly as a run started by hand. The script derives the master (the job's first node, at the
address SLURM has for it) and the port (from the job id, as vlm-tui itself does inside srun),
and names the run folder every node records into (VLM_TUI_RUN_ID).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from vlm_tui.core.records.folder import RUNS_FOLDER
from vlm_tui.core.records.job_file import JOB_RESUMES_VARIABLE, RUN_ID_VARIABLE
from vlm_tui.core.request.axolotl_config import CHECKPOINT_TRIGGER_FILE
from vlm_tui.core.runs.job_control import GRACEFUL_SIGNAL

JOB_SCRIPT_NAME = "job.sbatch"
# How long before the time limit SLURM warns the script (SIGUSR1): time for a checkpoint.
EARLY_WARNING_S = 120
# How often the script asks again for the warning's checkpoint until node 0's output exists.
CHECKPOINT_RETRY_S = 2
# The port vlm-tui derives inside srun without MASTER_PORT (core/host/topology.py).
PORT_BASE = 15000
COMMENT_COLUMN = 36

# SLURM's time formats: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S; or UNLIMITED.
_TIME = re.compile(r"(\d+(:\d{1,2}){0,2}|\d+-\d+(:\d{1,2}){0,2}|unlimited|infinite)", re.I)
_MEMORY = re.compile(r"\d+[KMGT]?", re.I)
# Partition, account and QOS names (a partition may be a comma-separated list).
_NAME = re.compile(r"[A-Za-z0-9_.+-]{1,100}")
_NAMES = re.compile(r"[A-Za-z0-9_.+-]{1,100}(,[A-Za-z0-9_.+-]{1,100})*")


def time_limit(value: str) -> str:
    text = value.strip()
    if not _TIME.fullmatch(text):
        raise ValueError(
            "must be a SLURM time: minutes, H:M:S, D-H, D-H:M:S (e.g. 90, 4:00:00, 2-00:00:00)"
        )
    return text


def memory(value: str) -> str:
    text = value.strip()
    if not _MEMORY.fullmatch(text):
        raise ValueError("must be a whole number with an optional unit K, M, G or T (e.g. 256G)")
    return text.upper()


def slurm_name(value: str) -> str:
    text = value.strip()
    if not _NAME.fullmatch(text):
        raise ValueError("must be a SLURM name: letters, digits, '_', '.', '+' or '-'")
    return text


def partitions(value: str) -> str:
    text = value.strip()
    if not _NAMES.fullmatch(text):
        raise ValueError("must be a partition name, or several separated by commas")
    return text


def sbatch_option(value: str) -> str:
    """One extra `#SBATCH` line's option, e.g. `--constraint=a100` (the prefix is optional)."""
    text = value.strip()
    if text.startswith("#SBATCH"):
        text = text[len("#SBATCH") :].strip()
    if not text.startswith("-") or any(ch in text for ch in "\r\n\0"):
        raise ValueError("must be one sbatch option on one line, e.g. --constraint=a100")
    return text


@dataclass(frozen=True)
class JobRequest:
    """What the script asks SLURM for and what each node runs; values already checked."""

    run_id: str
    job_name: str
    nodes: int
    workdir: Path  # the shared folder: runs/ and outputs/ live here for every node
    vlm_tui: Sequence[str]  # how a node starts vlm-tui (this install's, by absolute path)
    run_args: Sequence[str]  # the run's flags, as `vlm-tui --no-ui` takes them
    gpus_per_node: int | None = None
    cpus_per_node: int | None = None
    mem_per_node: str | None = None
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    time_limit: str | None = None
    requeue: bool = False
    extra_options: Sequence[str] = ()


def sbatch_lines(job: JobRequest) -> list[tuple[str, str]]:
    """Each `#SBATCH` option with what it does, in the script's order."""
    run_folder = job.workdir / "runs" / job.run_id
    lines = [
        (f"--job-name={job.job_name}", "the name squeue and sacct show"),
        (f"--nodes={job.nodes}", "nodes for the run"),
        (
            "--ntasks-per-node=1",
            "one task per node: its vlm-tui starts that node's training processes",
        ),
    ]
    asked = [
        ("--gpus-per-node", job.gpus_per_node, "GPUs on each node, one process each"),
        ("--cpus-per-task", job.cpus_per_node, "CPU cores on each node"),
        ("--mem", job.mem_per_node, "memory on each node"),
        ("--partition", job.partition, "the partition (queue) to run in"),
        ("--account", job.account, "the account the time is charged to"),
        ("--qos", job.qos, "the quality of service"),
        ("--time", job.time_limit, "the time limit: SLURM ends the job then"),
    ]
    lines += [(f"{option}={value}", why) for option, value, why in asked if value is not None]
    # A --signal given with --sbatch_line replaces the default warning (sbatch takes one).
    if not any(option.startswith("--signal") for option in job.extra_options):
        lines.append(
            (
                f"--signal=B:USR1@{EARLY_WARNING_S}",
                f"warn this script {EARLY_WARNING_S} s before the time limit",
            )
        )
    lines += [
        (
            "--requeue" if job.requeue else "--no-requeue",
            "may be put back in the queue after preemption or a node failure"
            if job.requeue
            else "never put back in the queue by SLURM",
        ),
        (f"--chdir={job.workdir}", "the shared folder: runs/ and outputs/ for every node"),
        (f"--output={run_folder}/slurm-%j.out", "this script's and the nodes' output"),
        ("--open-mode=append", "a requeued job adds to that output instead of replacing it"),
        *((option, "given with --sbatch_line") for option in job.extra_options),
    ]
    return lines


def job_script(job: JobRequest) -> str:
    """The whole script, ready for `sbatch`."""
    options = [f"#SBATCH {option}" for option, _ in sbatch_lines(job)]
    # Comments line up, but a long path does not push every one of them out.
    width = min(max(len(line) for line in options), COMMENT_COLUMN)
    sbatch = [
        f"{line.ljust(width)}  # {why}"
        for line, (_, why) in zip(options, sbatch_lines(job), strict=True)
    ]
    command = " \\\n    ".join(_command_lines([*job.vlm_tui, "--no-ui"], job.run_args))
    run_folder = shlex.quote(str(job.workdir / RUNS_FOLDER / job.run_id))
    return "\n".join(
        [
            "#!/bin/bash",
            f"# vlm-tui's SLURM job for run {job.run_id}, written by `vlm-tui slurm`.",
            *sbatch,
            "",
            *_stop_trap(job),
            "",
            "# The master is the job's first node, at the address SLURM has for it; the port",
            "# comes from the job id, so two jobs on one node never share it.",
            'first_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)',
            'MASTER_ADDR=$(scontrol show node "$first_node"'
            " | sed -n 's/.* NodeAddr=\\([^ ]*\\).*/\\1/p')",
            'export MASTER_ADDR="${MASTER_ADDR:-$first_node}"',
            f"export MASTER_PORT=$(({PORT_BASE} + SLURM_JOB_ID % 10000))",
            "# Every node's vlm-tui records into this one run folder under runs/.",
            f"export {RUN_ID_VARIABLE}={shlex.quote(job.run_id)}",
            "",
            f"run_folder={run_folder}",
            "# A requeued or re-submitted job finds the run recorded: every node goes on in it",
            "# from the newest complete checkpoint, node 0's, on the shared folder.",
            'if [ -e "$run_folder/command.json" ]; then',
            f"    export {JOB_RESUMES_VARIABLE}=1",
            "    # The earlier attempt's cross-node check answered for that attempt only.",
            '    if [ -d "$run_folder/node-check" ]; then',
            '        mv "$run_folder/node-check"'
            ' "$run_folder/node-check-before-$SLURM_JOB_ID.${SLURM_RESTART_COUNT:-0}"',
            "    fi",
            '    echo "[vlm-tui] SLURM: run $VLM_TUI_RUN_ID goes on from its newest checkpoint"',
            "fi",
            "",
            "# The time limit's early warning: node 0's training saves a checkpoint after its",
            "# next step (the trigger file in its output folder, named in its status.json).",
            "ask_checkpoint() {",
            '    output=$(sed -n \'s/^  "output_dir": "\\(.*\\)",\\{0,1\\}$/\\1/p\''
            ' "$run_folder/status.json" 2>/dev/null)',
            '    [ -n "$output" ] && [ -d "$output" ]'
            f' && touch "$output/{CHECKPOINT_TRIGGER_FILE}"',
            "}",
            "# SLURM checks time limits every 30 s, so the warning may come up to a minute early,",
            "# before node 0's training made its output folder: asked again until it is there.",
            "early_warning() {",
            '    echo "[vlm-tui] SLURM: the time limit is near: asking node 0 for a checkpoint"',
            "    ask_checkpoint && return",
            "    echo \"[vlm-tui] SLURM: node 0's output folder is not there yet:"
            f' asking every {CHECKPOINT_RETRY_S} s"',
            f"    (until ask_checkpoint; do sleep {CHECKPOINT_RETRY_S};"
            ' kill -0 "$step" 2>/dev/null || exit 0; done) &',
            "}",
            "trap early_warning USR1",
            f"srun --kill-on-bad-exit=1 {command} &",
            "step=$!",
            "# wait returns early when the warning arrives; the step goes on until it ends.",
            "while true; do",
            '    wait "$step"',
            "    code=$?",
            '    kill -0 "$step" 2>/dev/null || break',
            "done",
            'exit "$code"',
            "",
        ]
    )


def _stop_trap(job: JobRequest) -> list[str]:
    """A graceful stop from the login node: `scancel --batch --signal=USR2` reaches this shell
    alone (a signal to the step would reach every process in it, launchers included); a step
    on every node then has that node's vlm-tui ask its own supervisor, once."""
    stop = " ".join(shlex.quote(word) for word in [*job.vlm_tui, "stop"])
    run_folder = shlex.quote(str(job.workdir / "runs" / job.run_id))
    return [
        "# `vlm-tui stop` from the login node: every node's training stops at its next step,",
        "# saving; each node's vlm-tui asks its own supervisor.",
        "stop_nodes() {",
        '    echo "[vlm-tui] SLURM: stop asked: every node stops its training, saving"',
        '    srun --overlap --nodes="$SLURM_JOB_NUM_NODES" --ntasks-per-node=1'
        f" {stop} {run_folder}",
        "}",
        f"trap stop_nodes {GRACEFUL_SIGNAL}",
    ]


def _command_lines(program: Sequence[str], args: Sequence[str]) -> list[str]:
    """The command, quoted: the program on the first line, then a flag and its value a line."""
    lines = [" ".join(shlex.quote(word) for word in program)]
    for word in args:
        if word.startswith("--") or len(lines) == 1:
            lines.append(shlex.quote(word))
        else:
            lines[-1] += " " + shlex.quote(word)
    return lines
