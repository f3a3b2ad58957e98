"""The exact training command and the environment it runs in.

Commands are argument lists, never shell strings: no value a user typed is ever read by a shell.
"""

from __future__ import annotations

import importlib.util
import shlex
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from vlm_tui.core.errors import SetupError
from vlm_tui.core.host.topology import Topology

TRAIN_MODULE = "axolotl.cli.train"
INSTALL_HINT = "install the training stack into this Python: pip install 'vlm-tui[train]'"


@dataclass(frozen=True)
class LaunchPlan:
    argv: tuple[str, ...]
    env: dict[str, str]
    cwd: str
    # The rendezvous port the command uses (picked at launch for one-node runs); None for a
    # single process or inside another launcher.
    port: int | None = None

    def shown(self) -> str:
        """The command as a user can paste it into a shell."""
        return shlex.join(self.argv)


def single_process_argv(config_path: Path, python: str = sys.executable) -> tuple[str, ...]:
    """The guide's single-GPU command: axolotl's trainer in this interpreter."""
    return (python, "-m", TRAIN_MODULE, str(config_path))


def training_environment(environ: Mapping[str, str], *, offline: bool) -> dict[str, str]:
    """The child's environment: the user's, plus what makes output live and runs private."""
    env = dict(environ)
    # Lines must reach train.log as they are printed, not when a buffer fills.
    env["PYTHONUNBUFFERED"] = "1"
    # The trainer's tqdm bar is where step/total, rate and ETA come from; this switch hides it.
    env.pop("HF_HUB_DISABLE_PROGRESS_BARS", None)
    # Axolotl's telemetry is on by default; a user who set the variable keeps their choice.
    env.setdefault("AXOLOTL_DO_NOT_TRACK", "1")
    if offline:
        # Everything is local: never let axolotl call the hub (its whoami check runs unless
        # HF_HUB_OFFLINE is exactly "1").
        env.setdefault("HF_HUB_OFFLINE", "1")
        env.setdefault("HF_DATASETS_OFFLINE", "1")
    return env


def require_training_stack(modules: tuple[str, ...] = ("axolotl", "accelerate")) -> None:
    """Fail with one line before launching if this Python cannot run the training."""
    for module in modules:
        if importlib.util.find_spec(module) is None:
            raise SetupError(f"{module} is not installed; {INSTALL_HINT}")


def accelerate_launcher(python: str = sys.executable) -> tuple[str, ...]:
    """`accelerate launch` from the same environment as this Python."""
    script = Path(python).parent / "accelerate"
    if script.exists():
        return (str(script), "launch")
    return (python, "-m", "accelerate.commands.launch")


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now, for one-node runs that named none."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def mixed_precision_for(config: Mapping[str, object]) -> str:
    """accelerate's --mixed_precision matching the YAML (axolotl trains with the YAML's)."""
    if config.get("bf16") is True or config.get("bf16") == "auto":
        return "bf16"
    if config.get("fp16") is True:
        return "fp16"
    return "no"


def training_argv(
    topology: Topology,
    *,
    config_path: Path,
    accelerate_config: Path,
    mixed_precision: str,
    port: int,
    rendezvous_timeout: int,
    launcher: tuple[str, ...],
    python: str = sys.executable,
) -> tuple[str, ...]:
    """The guide's `python -m axolotl.cli.train` for one process or inside a launcher, else
    `accelerate launch` with every value explicit: accelerate reads none of the cluster's
    variables itself.

    `--same_network` with the static rendezvous makes torchrun use the master's address and
    port as given, with this node's rank; naming our own config file keeps a stray default
    accelerate config out.
    """
    if not topology.uses_accelerate:
        return single_process_argv(config_path, python)
    return (
        *launcher,
        "--config_file",
        str(accelerate_config),
        "--multi_gpu",
        "--num_machines",
        str(topology.nodes),
        "--machine_rank",
        str(topology.node_rank),
        "--num_processes",
        str(topology.world_size),
        "--main_process_ip",
        topology.master_addr,
        "--main_process_port",
        str(port),
        "--rdzv_backend",
        "static",
        "--same_network",
        "--rdzv_conf",
        f"timeout={rendezvous_timeout}",
        "--mixed_precision",
        mixed_precision,
        "--dynamo_backend",
        "no",
        "-m",
        TRAIN_MODULE,
        str(config_path),
    )


def accelerate_config_text(on_cpu: bool) -> str:
    """The config file named by --config_file: valid, and adding nothing the flags don't say."""
    kind = "MULTI_CPU" if on_cpu else "MULTI_GPU"
    return (
        "# Written by vlm-tui so that no default accelerate config on this node applies;\n"
        "# every launch value is on the command line.\n"
        "compute_environment: LOCAL_MACHINE\n"
        f"distributed_type: {kind}\n"
        "debug: false\n"
    )


def distributed_environment(
    env: Mapping[str, str], topology: Topology, *, on_cpu: bool
) -> dict[str, str]:
    """The launcher's environment for a distributed run."""
    result = dict(env)
    if topology.uses_accelerate:
        # torchrun takes any PET_<FLAG> as that flag's default: Kubeflow's would override ours
        # (PET_NNODES=2 in a one-node launch waits for a second node forever).
        for name in [name for name in result if name.startswith("PET_")]:
            del result[name]
    result.update(topology.worker_env)
    if on_cpu:
        # Without it, processes on a host without GPUs each train alone (facts note, traps).
        result["ACCELERATE_USE_CPU"] = "true"
    return result
