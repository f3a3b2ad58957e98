"""From a request to a started run: plan, check, record, hand over to the supervisor.

Both front-ends call these steps in this order; each one either succeeds or raises an error the
front-end shows as one line, and nothing is created before the last check has passed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from vlm_tui.core.checks.schema_check import check_with_axolotl
from vlm_tui.core.data.run_dataset import PreparedData, prepare_datasets
from vlm_tui.core.errors import SetupError, UserError
from vlm_tui.core.host.detection import Detection, detect
from vlm_tui.core.host.hardware import Hardware, probe_hardware
from vlm_tui.core.host.topology import INSIDE_LAUNCHER, Topology, resolve_topology
from vlm_tui.core.launch import demo
from vlm_tui.core.launch.command import (
    LaunchPlan,
    accelerate_config_text,
    accelerate_launcher,
    distributed_environment,
    free_port,
    mixed_precision_for,
    training_argv,
    training_environment,
)
from vlm_tui.core.launch.secrets import redact_environment
from vlm_tui.core.records.command_file import write_command
from vlm_tui.core.records.folder import (
    RUNS_FOLDER,
    STOP_REQUEST_VARIABLE,
    RunPaths,
    create_run_folder,
    iso,
    utc_now,
)
from vlm_tui.core.records.job_file import RUN_ID_VARIABLE, claim_job_folder, job_resumes
from vlm_tui.core.records.status_file import write_status
from vlm_tui.core.records.trackers_file import write_trackers
from vlm_tui.core.request.axolotl_config import (
    build_axolotl_config,
    dump_axolotl_yaml,
    load_axolotl_yaml,
    merge_into_loaded,
    output_dir_for,
)
from vlm_tui.core.request.settings import Settings, check_consistency, settings_from_values
from vlm_tui.core.request.trackers import (
    name_runs,
    tracked_by,
    tracker_environment,
    tracker_places,
)
from vlm_tui.core.runs import user_index
from vlm_tui.core.runs.checkpoints import newest_checkpoint
from vlm_tui.core.training_plugins import (
    CPU_PLACEMENT_PLUGIN,
    DATA_WORKERS_PLUGIN,
    GRACEFUL_STOP_PLUGIN,
    ROLE_BOUNDARIES_PLUGIN,
    TRACKIO_BRIDGE_PLUGIN,
    VLM_TUI_PLUGINS,
)

ACCELERATE_CONFIG_NAME = "accelerate.yaml"
# Where a node other than node 0 lets axolotl write: its own run folder, never the shared output.
NODE_OUTPUT_NAME = "node-output"

DEMO_OUTPUT_NAME = "vlm-tui-demo"

Report = Callable[[str], None]


@dataclass(frozen=True)
class LaunchRequest:
    settings: Settings
    # The user's own axolotl YAML (`--config`), laid under the explicit settings.
    loaded_config: dict[str, Any] | None = None
    demo: bool = False
    overwrite: bool = False
    # Go on from the newest checkpoint-N in the output folder, the step count with it.
    resume: bool = False
    # Train on a dataset's usable rows when some are not (they are listed in the run folder).
    skip_bad_rows: bool = False


@dataclass(frozen=True)
class RunPlan:
    """Everything decided before anything is written."""

    settings: Settings
    config: dict[str, Any]
    detection: Detection
    topology: Topology
    hardware: Hardware
    output_dir: Path
    offline: bool
    demo_assets: demo.DemoAssets | None
    # The step the training goes on from (a resume's checkpoint step), for numbering its logs.
    start_step: int = 0
    skip_bad_rows: bool = False


def demo_settings(
    settings: Settings, assets: demo.DemoAssets, workdir: Path, *, resume: bool = False
) -> Settings:
    """The demo's model, data and training values, under anything the user set explicitly.

    A new demo run gets a fresh output folder; a resumed one goes on in the newest.
    """
    output = newest_output_name if resume else first_free_output_name
    values: dict[str, Any] = {
        "base_model": str(assets.model_dir),
        "dataset_name": str(assets.dataset_path),
        "chat_template": demo.DEMO_CHAT_TEMPLATE,
        "output_model_name": output(DEMO_OUTPUT_NAME, workdir),
        **demo.DEMO_TRAINING,
    }
    defaults = {name: value for name, value in values.items() if name not in settings.explicit}
    return replace(settings, **defaults)


def first_free_output_name(stem: str, workdir: Path) -> str:
    """`stem`, or `stem-2`, `stem-3`...: the demo never trains over an earlier demo's model."""
    for number in range(1, 10_000):
        name = stem if number == 1 else f"{stem}-{number}"
        if not output_dir_for(name, workdir).exists():
            return name
    raise SetupError(f"too many {stem} folders under outputs/")


def newest_output_name(stem: str, workdir: Path) -> str:
    """The last of `stem`, `stem-2`, `stem-3`... that exists (`stem` when none does)."""
    newest = stem
    for number in range(2, 10_000):
        name = f"{stem}-{number}"
        if not output_dir_for(name, workdir).exists():
            break
        newest = name
    return newest


def _holds_results(folder: Path) -> bool:
    try:
        return folder.is_dir() and any(folder.iterdir())
    except OSError:
        return False


def plan_run(request: LaunchRequest, environ: Mapping[str, str], workdir: Path) -> RunPlan:
    """Decide the config and command inputs; raises UserError for anything the user must fix."""
    settings = request.settings
    demo_assets = demo.demo_asset_paths(demo.demo_cache_root(environ)) if request.demo else None
    if demo_assets is not None:
        settings = demo_settings(settings, demo_assets, workdir, resume=request.resume)
    if request.loaded_config is None:
        check_consistency(settings)
    hardware = probe_hardware(environ)
    topology = resolve_topology(environ, hardware.gpu_count, settings.gpus_per_node)
    if request.loaded_config is None:
        config = build_axolotl_config(settings, hardware, workdir, environ)
    else:
        config = merge_into_loaded(request.loaded_config, settings, hardware, workdir, environ)
    # vlm-tui reads this one itself (to number steps), so a loaded YAML's value is checked here.
    logging_steps = config.get("logging_steps", 1)
    if not isinstance(logging_steps, int) or isinstance(logging_steps, bool):
        raise UserError(
            "logging_steps", f"must be a whole number in the config, not {logging_steps!r}"
        )
    if not 1 <= logging_steps <= 100_000:
        raise UserError("logging_steps", "must be a whole number from 1 to 100000")
    output = config.get("output_dir")
    if not isinstance(output, str) or not output.strip():
        raise UserError("output_model_name", "is required: the config names no output_dir")
    output_dir = (workdir / output).resolve()
    config["output_dir"] = str(output_dir)
    ours = [GRACEFUL_STOP_PLUGIN, DATA_WORKERS_PLUGIN]
    if config.get("role_boundaries"):
        ours.append(ROLE_BOUNDARIES_PLUGIN)
    if topology.distributed and hardware.gpu_count == 0:
        ours.append(CPU_PLACEMENT_PLUGIN)
    if "trackio" in tracked_by(config):
        ours.append(TRACKIO_BRIDGE_PLUGIN)
    plugins = [str(p) for p in config.get("plugins") or [] if p not in VLM_TUI_PLUGINS]
    config["plugins"] = [*plugins, *ours]
    start_step = 0
    # A later attempt of a job: every node loads node 0's newest complete checkpoint from the
    # shared output folder (a node's own rng_state file may be missing there: the Trainer then
    # goes on without it), or starts over where none was saved; the output is the job's own.
    resumes_job = job_resumes(environ)
    if request.resume or resumes_job:
        newest = newest_checkpoint(output_dir)
        if newest is None and not resumes_job:
            raise UserError(
                "resume",
                f"{output_dir} holds no complete checkpoint-N folder to go on from;"
                " run without --resume",
            )
        if newest is not None:
            start_step, checkpoint = newest
            config["resume_from_checkpoint"] = str(checkpoint)
    # Other nodes never write into the output folder, so what is already there is node 0's.
    elif topology.node_rank == 0 and _holds_results(output_dir) and not request.overwrite:
        raise UserError(
            "output_model_name",
            f"{output_dir} already holds files from an earlier run; choose another name,"
            " pass --resume to go on from its newest checkpoint, or pass --overwrite",
        )
    base = str(config.get("base_model", ""))
    datasets = config.get("datasets") or []
    paths = [base] + [str(d.get("path", "")) for d in datasets if isinstance(d, dict)]
    # Only local model and data: nothing to download, so the hub is never asked.
    offline = all(path.startswith("/") for path in paths)
    return RunPlan(
        settings=settings,
        config=config,
        detection=detect(environ),
        topology=topology,
        hardware=hardware,
        output_dir=output_dir,
        offline=offline,
        demo_assets=demo_assets,
        start_step=start_step,
        skip_bad_rows=request.skip_bad_rows,
    )


def resume_request(paths: RunPaths) -> LaunchRequest:
    """Go on with a recorded run: its own config.yml, from its newest checkpoint."""
    return LaunchRequest(
        settings=settings_from_values({}, require_data=False),
        loaded_config=load_axolotl_yaml(paths.config),
        resume=True,
    )


def run_name(plan: RunPlan) -> str:
    """The run folder's name; other nodes' and ranks' records on shared storage never collide."""
    name = plan.settings.output_model_name or plan.output_dir.name
    topology = plan.topology
    if topology.mode == INSIDE_LAUNCHER and topology.global_rank > 0:
        return f"{name}-rank{topology.global_rank}"
    if topology.node_rank > 0:
        return f"{name}-node{topology.node_rank}"
    return name


def open_run_folder(plan: RunPlan, environ: Mapping[str, str], workdir: Path) -> RunPaths:
    """A new run folder; inside a job that names one (VLM_TUI_RUN_ID, set by the script
    `vlm-tui slurm` writes), this node's place in that shared folder."""
    runs_root = workdir / RUNS_FOLDER
    run_id = environ.get(RUN_ID_VARIABLE)
    if run_id:
        resume_from = plan.start_step if job_resumes(environ) else None
        return claim_job_folder(runs_root, run_id, plan.topology.node_rank, resume_from=resume_from)
    return create_run_folder(runs_root, run_name(plan), utc_now())


def writes_shared_output(plan: RunPlan) -> bool:
    """Whether this node's processes may write into the output folder (only node 0's do)."""
    return plan.topology.node_rank == 0


def trains_demo_model(config: Mapping[str, Any], environ: Mapping[str, str]) -> bool:
    """Whether the config's base_model is the embedded demo's model in this node's cache."""
    base = config.get("base_model")
    if not isinstance(base, str) or not base:
        return False
    model_dir = demo.demo_asset_paths(demo.demo_cache_root(environ)).model_dir
    return os.path.abspath(base) == os.path.abspath(model_dir)


def build_demo_in_child(assets: demo.DemoAssets, environ: Mapping[str, str]) -> None:
    """Build the demo model and data in a child (torch stays out of this process)."""
    if demo.demo_assets_ready(assets):
        return
    done = subprocess.run(
        [sys.executable, "-m", "vlm_tui.training.demo_builder", "build", str(assets.root)],
        env={**environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0 or not demo.demo_assets_ready(assets):
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise SetupError(f"building the demo model failed: {tail}")


def schema_errors(plan: RunPlan, env: Mapping[str, str]) -> list[dict[str, str]]:
    """axolotl's verdict on the config, checked from a scratch file before any run exists."""
    with tempfile.TemporaryDirectory(prefix="vlm-tui-check-") as scratch:
        path = Path(scratch) / "config.yml"
        path.write_text(dump_axolotl_yaml(plan.config), encoding="utf-8")
        return check_with_axolotl(path, env)


def launch_plan(
    plan: RunPlan, paths: RunPaths, environ: Mapping[str, str], workdir: Path
) -> LaunchPlan:
    env = training_environment(environ, offline=plan.offline)
    env[STOP_REQUEST_VARIABLE] = str(paths.stop_request)
    tracker_environment(plan.config, env)
    if plan.demo_assets is not None or trains_demo_model(plan.config, environ):
        # The demo is tiny: extra threads only fight over a shared CPU. A resumed demo run is
        # planned from its config.yml alone, so the model it names is what tells.
        for name, value in demo.DEMO_ENVIRONMENT.items():
            env.setdefault(name, value)
    topology = plan.topology
    on_cpu = plan.hardware.gpu_count == 0
    if topology.distributed:
        env = distributed_environment(env, topology, on_cpu=on_cpu)
    accelerate_config = paths.root / ACCELERATE_CONFIG_NAME
    port = None
    if topology.uses_accelerate:
        port = topology.master_port or free_port()
    argv = training_argv(
        topology,
        config_path=paths.config,
        accelerate_config=accelerate_config,
        mixed_precision=mixed_precision_for(plan.config),
        port=port or 0,
        rendezvous_timeout=plan.settings.rendezvous_timeout,
        launcher=accelerate_launcher(),
    )
    return LaunchPlan(argv=argv, env=env, cwd=str(workdir), port=port)


# Where a preview says the run folder will be; the real name gets the launch time.
PREVIEW_RUN_FOLDER = "<new run folder>"


def preview(plan: RunPlan, environ: Mapping[str, str], workdir: Path) -> LaunchPlan:
    """The command `record_run` would build, without creating anything.

    Only the run folder (named at launch) and, where none was given, the free port differ.
    """
    paths = RunPaths(workdir / RUNS_FOLDER / PREVIEW_RUN_FOLDER)
    return launch_plan(plan, paths, environ, workdir)


def prepare_data(plan: RunPlan, workdir: Path, report: Report | None = None) -> PreparedData:
    """Check and convert the plan's local datasets (see run_dataset); nothing is created."""
    return prepare_datasets(
        plan.config, workdir, skip_bad_rows=plan.skip_bad_rows, report=report or _quiet
    )


def _quiet(_text: str) -> None:
    pass


def record_run(
    plan: RunPlan,
    environ: Mapping[str, str],
    workdir: Path,
    *,
    dry_run: bool,
    data: PreparedData | None = None,
    report: Report | None = None,
) -> tuple[RunPaths, LaunchPlan]:
    """Create the run folder with config.yml, the dataset the training reads, command.json and
    a first status.json, and add it to the user's runs index (a warning to `report` when that
    cannot be: the run goes on). `data` is the datasets' check, when the caller ran it already."""
    if data is None:
        data = prepare_data(plan, workdir)
    try:
        paths = open_run_folder(plan, environ, workdir)
    except BaseException:
        data.discard()
        raise
    # Trackers name the run after its folder unless told otherwise.
    config = name_runs(data.place(paths.root, plan.config), paths.run_id)
    if not writes_shared_output(plan):
        config = {**config, "output_dir": str(paths.root / NODE_OUTPUT_NAME)}
    paths.config.write_text(dump_axolotl_yaml(config), encoding="utf-8")
    launch = launch_plan(plan, paths, environ, workdir)
    # Trackers record from the first process only, which runs on node 0.
    places = tracker_places(config, environ, workdir) if writes_shared_output(plan) else []
    if places:
        write_trackers(paths, places)
    if plan.topology.uses_accelerate:
        on_cpu = plan.hardware.gpu_count == 0
        (paths.root / ACCELERATE_CONFIG_NAME).write_text(
            accelerate_config_text(on_cpu), encoding="utf-8"
        )
    topology = plan.topology
    write_command(
        paths,
        {
            "argv": list(launch.argv),
            "shown": launch.shown(),
            "cwd": launch.cwd,
            "env": redact_environment(launch.env),
            "mode": topology.mode,
            "topology": {
                "source": topology.source,
                "nodes": topology.nodes,
                "node_rank": topology.node_rank,
                "processes_per_node": topology.processes_per_node,
                "world_size": topology.world_size,
                "global_rank": topology.global_rank,
                "local_rank": topology.local_rank,
                "master_addr": topology.master_addr,
                "master_port": launch.port or topology.master_port,
                "origins": topology.origins,
            },
            "logging_steps": int(plan.config.get("logging_steps") or 1),
            "start_step": plan.start_step,
        },
    )
    write_status(
        paths,
        {
            "run_id": paths.run_id,
            "state": "dry_run" if dry_run else "created",
            "created_at": iso(utc_now()),
            "output_dir": str(
                plan.output_dir if writes_shared_output(plan) else config["output_dir"]
            ),
            "config": str(paths.config),
            "exit_code": None,
            "datasets": [
                {
                    "use": "train" if dataset.key == "datasets" else "eval",
                    "source": str(dataset.report.source),
                    "copy": config[dataset.key][dataset.index]["path"],
                    "rows": dataset.report.rows,
                    "good_rows": dataset.report.good_rows,
                    "images": dataset.report.images,
                    "problem_rows": len(dataset.report.problems),
                    **(
                        {"tokens": data.token_lengths}
                        if data.token_lengths and dataset.is_first_training
                        else {}
                    ),
                }
                for dataset in data.datasets
            ],
        },
    )
    warning = user_index.record(paths, environ)
    if warning:
        (report or _quiet)(warning)
    return paths, launch


def start_supervisor(paths: RunPaths, launch: LaunchPlan) -> subprocess.Popen[bytes]:
    """Hand the run to its supervisor, in a session of its own so it outlives this process."""
    with paths.supervisor_log.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "vlm_tui.core.supervise.supervisor", str(paths.root)],
            cwd=launch.cwd,
            env=launch.env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
