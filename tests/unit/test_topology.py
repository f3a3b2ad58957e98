"""From a cluster's environment to the exact training command, or the exact one-line error.

Host names end in `.invalid`: these tests resolve and connect to nothing.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from vlm_tui.core.errors import UserError
from vlm_tui.core.host.topology import (
    INSIDE_LAUNCHER,
    MULTI_NODE,
    ONE_NODE,
    SINGLE,
    resolve_topology,
    tasks_per_node,
)
from vlm_tui.core.launch.command import distributed_environment, mixed_precision_for, training_argv

FREE_PORT = 55555  # stands in for the port picked at launch when none is named
SINGLE_CMD = "python -m axolotl.cli.train CFG"


def accelerate(nodes: int, rank: int, total: int, ip: str, port: int) -> str:
    return (
        "accelerate launch --config_file ACC --multi_gpu"
        f" --num_machines {nodes} --machine_rank {rank} --num_processes {total}"
        f" --main_process_ip {ip} --main_process_port {port}"
        " --rdzv_backend static --same_network --rdzv_conf timeout=600"
        " --mixed_precision no --dynamo_backend no -m axolotl.cli.train CFG"
    )


def command_for(env: dict[str, str], gpus: int, gpus_per_node: int | None = None) -> str:
    topology = resolve_topology(env, gpus, gpus_per_node)
    argv = training_argv(
        topology,
        config_path=Path("CFG"),
        accelerate_config=Path("ACC"),
        mixed_precision="no",
        port=topology.master_port or FREE_PORT,
        rendezvous_timeout=600,
        launcher=("accelerate", "launch"),
        python="python",
    )
    return shlex.join(argv)


GUIDE_NODE = {
    "MASTER_ADDR": "gpu-node-0.example.invalid",
    "MASTER_PORT": "29500",
    "WORLD_SIZE": "4",
    "LOCAL_RANK": "0",
}
SLURM_STEP = {
    "SLURM_JOB_ID": "4242",
    "SLURM_STEP_ID": "0",
    "SLURM_NNODES": "2",
    "SLURM_STEP_NUM_NODES": "2",
    "SLURM_JOB_NODELIST": "gpu-[07-08]",
    "SLURM_STEP_NODELIST": "gpu-[07-08]",
}

# (id, environment, GPUs this node sees, --gpus_per_node, expected command or error)
CASES: list[tuple[str, dict[str, str], int, int | None, str]] = [
    ("nothing set, CPU", {}, 0, None, SINGLE_CMD),
    ("nothing set, one GPU", {}, 1, None, SINGLE_CMD),
    ("nothing set, four GPUs: still the guide's single mode", {}, 4, None, SINGLE_CMD),
    (
        "nothing set, --gpus_per_node 4",
        {},
        4,
        4,
        accelerate(1, 0, 4, "127.0.0.1", FREE_PORT),
    ),
    *[
        (
            f"guide 4-node example, node {rank}",
            {**GUIDE_NODE, "RANK": str(rank)},
            1,
            None,
            accelerate(4, rank, 4, "gpu-node-0.example.invalid", 29500),
        )
        for rank in range(4)
    ],
    (
        "guide migration example (no MASTER_PORT, no LOCAL_RANK)",
        {"MASTER_ADDR": "node-0.invalid", "RANK": "2", "WORLD_SIZE": "4"},
        1,
        None,
        accelerate(4, 2, 4, "node-0.invalid", 29500),
    ),
    (
        "guide option 1: WORLD_SIZE=4 on a 4-GPU node",
        {"MASTER_ADDR": "localhost", "MASTER_PORT": "29500", "WORLD_SIZE": "4"},
        4,
        None,
        accelerate(1, 0, 4, "localhost", 29500),
    ),
    (
        "guide option 2: MASTER_ADDR alone, all 8 GPUs",
        {"MASTER_ADDR": "localhost"},
        8,
        None,
        accelerate(1, 0, 8, "localhost", FREE_PORT),
    ),
    ("guide option 2 on a one-GPU node", {"MASTER_ADDR": "localhost"}, 1, None, SINGLE_CMD),
    ("LOCAL_RANK=0 alone", {"LOCAL_RANK": "0"}, 1, None, SINGLE_CMD),
    (
        "MASTER_ADDR=localhost NPROC_PER_NODE=2 on a CPU host",
        {"MASTER_ADDR": "localhost", "NPROC_PER_NODE": "2"},
        0,
        None,
        accelerate(1, 0, 2, "localhost", FREE_PORT),
    ),
    (
        "8 nodes x 4 GPUs, RANK=4 could be node 4 or the first process of node 1",
        {"MASTER_ADDR": "m.invalid", "WORLD_SIZE": "32", "RANK": "4"},
        4,
        None,
        "NODE_RANK: is needed: RANK=4 could be node 4 (a rank per node) or node 1 (a rank per"
        " process); set NODE_RANK on every node",
    ),
    (
        "2 nodes x 4 GPUs, RANK=1 can only be a rank per node",
        {"MASTER_ADDR": "m.invalid", "WORLD_SIZE": "8", "RANK": "1"},
        4,
        None,
        accelerate(2, 1, 8, "m.invalid", 29500),
    ),
    (
        "8 nodes x 4 GPUs, RANK=4 with NODE_RANK",
        {"MASTER_ADDR": "m.invalid", "WORLD_SIZE": "32", "RANK": "4", "NODE_RANK": "4"},
        4,
        None,
        accelerate(8, 4, 32, "m.invalid", 29500),
    ),
    (
        "2 nodes x 4 GPUs with NODE_RANK",
        {"MASTER_ADDR": "m.invalid", "WORLD_SIZE": "8", "RANK": "1", "NODE_RANK": "1"},
        4,
        None,
        accelerate(2, 1, 8, "m.invalid", 29500),
    ),
    (
        "2 nodes x 4 GPUs, RANK=4 can only be a rank per process",
        {"MASTER_ADDR": "m.invalid", "WORLD_SIZE": "8", "RANK": "4"},
        4,
        None,
        accelerate(2, 1, 8, "m.invalid", 29500),
    ),
    (
        "--gpus_per_node 2 wins over the GPUs seen",
        {"MASTER_ADDR": "m.invalid", "WORLD_SIZE": "4", "RANK": "1"},
        8,
        2,
        accelerate(2, 1, 4, "m.invalid", 29500),
    ),
    (
        "torchrun worker: the trainer runs directly",
        {
            "TORCHELASTIC_RUN_ID": "none",
            "RANK": "5",
            "WORLD_SIZE": "8",
            "LOCAL_RANK": "1",
            "LOCAL_WORLD_SIZE": "4",
            "GROUP_RANK": "1",
            "MASTER_ADDR": "m.invalid",
            "MASTER_PORT": "29500",
        },
        4,
        None,
        SINGLE_CMD,
    ),
    (
        "SLURM, one task per node",
        {
            **SLURM_STEP,
            "SLURM_PROCID": "1",
            "SLURM_NODEID": "1",
            "SLURM_LOCALID": "0",
            "SLURM_NTASKS": "2",
            "SLURM_STEP_TASKS_PER_NODE": "1(x2)",
        },
        4,
        None,
        accelerate(2, 1, 8, "gpu-07", 19242),
    ),
    (
        "SLURM, one task per GPU: srun is the launcher",
        {
            **SLURM_STEP,
            "SLURM_PROCID": "5",
            "SLURM_NODEID": "1",
            "SLURM_LOCALID": "1",
            "SLURM_NTASKS": "8",
            "SLURM_STEP_TASKS_PER_NODE": "4(x2)",
        },
        4,
        None,
        SINGLE_CMD,
    ),
    (
        "SLURM node list a[01-03,05],b7 with MASTER_PORT",
        {
            "SLURM_JOB_ID": "7",
            "SLURM_STEP_ID": "3",
            "SLURM_PROCID": "2",
            "SLURM_NODEID": "2",
            "SLURM_STEP_NUM_NODES": "5",
            "SLURM_NTASKS_PER_NODE": "1",
            "SLURM_STEP_NODELIST": "a[01-03,05],b7",
            "MASTER_PORT": "29400",
        },
        1,
        None,
        accelerate(5, 2, 5, "a01", 29400),
    ),
    (
        "SLURM batch script outside srun, 2 nodes",
        {"SLURM_JOB_ID": "4242", "SLURM_NNODES": "2", "SLURM_PROCID": "0", "SLURM_NODEID": "0"},
        4,
        None,
        "SLURM_NNODES: is 2, but vlm-tui runs in the batch script outside srun, where every node"
        " would be node 0; start it with: srun --ntasks-per-node=1 vlm-tui ...",
    ),
    (
        "SLURM batch script on one node: a plain single run",
        {"SLURM_JOB_ID": "4242", "SLURM_NNODES": "1", "SLURM_PROCID": "0"},
        1,
        None,
        SINGLE_CMD,
    ),
    (
        "Kubeflow PyTorchJob v1 (nprocPerNode auto, RANK is the pod)",
        {
            "PET_NNODES": "2",
            "PET_NODE_RANK": "1",
            "PET_NPROC_PER_NODE": "auto",
            "PET_MASTER_ADDR": "job-master-0.invalid",
            "PET_MASTER_PORT": "23456",
            "MASTER_ADDR": "job-master-0.invalid",
            "MASTER_PORT": "23456",
            "WORLD_SIZE": "2",
            "RANK": "1",
        },
        4,
        None,
        accelerate(2, 1, 8, "job-master-0.invalid", 23456),
    ),
    (
        "Kubeflow Trainer v2",
        {
            "PET_NNODES": "2",
            "PET_NODE_RANK": "0",
            "PET_NPROC_PER_NODE": "2",
            "PET_MASTER_ADDR": "tj-node-0-0.tj.invalid",
            "PET_MASTER_PORT": "29500",
        },
        2,
        None,
        accelerate(2, 0, 4, "tj-node-0-0.tj.invalid", 29500),
    ),
    (
        "Kubeflow elastic range",
        {"PET_NNODES": "1:4", "PET_NODE_RANK": "0"},
        1,
        None,
        "PET_NNODES: must be a node count such as 2 (elastic ranges such as '1:4' are not"
        " supported)",
    ),
    (
        "Open MPI, one rank per node",
        {
            "OMPI_COMM_WORLD_SIZE": "2",
            "OMPI_COMM_WORLD_RANK": "1",
            "OMPI_COMM_WORLD_LOCAL_RANK": "0",
            "OMPI_COMM_WORLD_LOCAL_SIZE": "1",
            "MASTER_ADDR": "m.invalid",
        },
        4,
        None,
        accelerate(2, 1, 8, "m.invalid", 29500),
    ),
    (
        "Open MPI, one rank per GPU: mpirun is the launcher",
        {
            "OMPI_COMM_WORLD_SIZE": "8",
            "OMPI_COMM_WORLD_RANK": "6",
            "OMPI_COMM_WORLD_LOCAL_RANK": "2",
            "OMPI_COMM_WORLD_LOCAL_SIZE": "4",
            "MASTER_ADDR": "m.invalid",
        },
        4,
        None,
        SINGLE_CMD,
    ),
    (
        "Open MPI across hosts without MASTER_ADDR",
        {
            "OMPI_COMM_WORLD_SIZE": "8",
            "OMPI_COMM_WORLD_RANK": "0",
            "OMPI_COMM_WORLD_LOCAL_SIZE": "4",
        },
        4,
        None,
        "MASTER_ADDR: is required: MPI names no master; export the first host's address to every"
        " rank (mpirun -x MASTER_ADDR -x MASTER_PORT)",
    ),
    (
        "Intel MPI / MPICH (PMI), one rank per node",
        {"PMI_SIZE": "2", "PMI_RANK": "0", "MPI_LOCALNRANKS": "1", "MASTER_ADDR": "m.invalid"},
        2,
        None,
        accelerate(2, 0, 4, "m.invalid", 29500),
    ),
    (
        "SageMaker",
        {"SM_HOSTS": '["algo-1","algo-2"]', "SM_CURRENT_HOST": "algo-2", "SM_NUM_GPUS": "8"},
        8,
        None,
        accelerate(2, 1, 16, "algo-1", 7777),
    ),
    (
        "SageMaker CPU instances (SM_NUM_GPUS=0)",
        {"SM_HOSTS": '["algo-1","algo-2"]', "SM_CURRENT_HOST": "algo-1", "SM_NUM_GPUS": "0"},
        0,
        None,
        accelerate(2, 0, 2, "algo-1", 7777),
    ),
    (
        "RANK not below WORLD_SIZE",
        {**GUIDE_NODE, "RANK": "4"},
        1,
        None,
        "RANK: is 4 but WORLD_SIZE is 4: ranks run 0..3",
    ),
    (
        "WORLD_SIZE not a multiple of the GPUs per node",
        {"MASTER_ADDR": "m.invalid", "WORLD_SIZE": "6", "RANK": "0"},
        4,
        None,
        "WORLD_SIZE: is 6, not a multiple of the 4 processes per node (GPUs visible on this"
        " node); set NPROC_PER_NODE or --gpus_per_node",
    ),
    (
        "port out of range",
        {**GUIDE_NODE, "RANK": "0", "MASTER_PORT": "70000"},
        1,
        None,
        "MASTER_PORT: must be a whole number from 1 to 65535 (got '70000')",
    ),
    (
        "port not a number",
        {**GUIDE_NODE, "RANK": "0", "MASTER_PORT": "http"},
        1,
        None,
        "MASTER_PORT: must be a whole number from 1 to 65535 (got 'http')",
    ),
    (
        "several nodes without MASTER_ADDR",
        {"WORLD_SIZE": "2", "RANK": "1"},
        1,
        None,
        "MASTER_ADDR: is required for 2 nodes: the address of the node with RANK 0, the same on"
        " every node",
    ),
    (
        "LOCAL_RANK of a second process",
        {**GUIDE_NODE, "RANK": "0", "LOCAL_RANK": "1"},
        1,
        None,
        "LOCAL_RANK: is 1: vlm-tui starts every process of a node itself; run it once per node,"
        " with LOCAL_RANK=0 or unset",
    ),
    (
        "WORLD_SIZE=4 on a CPU host without a rank",
        {"MASTER_ADDR": "localhost", "WORLD_SIZE": "4"},
        0,
        None,
        "RANK: is needed: WORLD_SIZE 4 with 1 process(es) per node means 4 nodes; set RANK (or"
        " NODE_RANK) on each node, or NPROC_PER_NODE=4 for one node",
    ),
    (
        "RANK without WORLD_SIZE",
        {"MASTER_ADDR": "m.invalid", "RANK": "1"},
        1,
        None,
        "WORLD_SIZE: is required with RANK or NODE_RANK: the number of processes in the whole"
        " job (nodes x processes per node)",
    ),
]


@pytest.mark.parametrize(
    ("environment", "gpus", "gpus_per_node", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_environment_gives_the_exact_command_or_error(
    environment: dict[str, str], gpus: int, gpus_per_node: int | None, expected: str
) -> None:
    if expected.startswith(("python ", "accelerate ")):
        assert command_for(environment, gpus, gpus_per_node) == expected
    else:
        with pytest.raises(UserError) as caught:
            command_for(environment, gpus, gpus_per_node)
        assert str(caught.value) == expected


def test_the_table_covers_at_least_25_environments() -> None:
    assert len(CASES) >= 25
    assert len({case[0] for case in CASES}) == len(CASES)


def test_every_value_says_where_it_came_from() -> None:
    topology = resolve_topology({**GUIDE_NODE, "RANK": "2"}, 1)
    assert topology.mode == MULTI_NODE
    assert topology.origins["node_rank"] == "RANK"
    assert topology.origins["master_addr"] == "MASTER_ADDR"
    assert topology.origins["processes_per_node"] == "GPUs visible on this node"
    assert topology.global_rank == 2
    slurm = resolve_topology(
        {**SLURM_STEP, "SLURM_PROCID": "1", "SLURM_NODEID": "1", "SLURM_NTASKS_PER_NODE": "1"}, 2
    )
    assert slurm.origins["master_addr"] == "SLURM_STEP_NODELIST"
    assert slurm.origins["master_port"] == "SLURM_JOB_ID"
    assert ("SLURM_NODEID", "1") in slurm.evidence


def test_modes() -> None:
    assert resolve_topology({}, 0).mode == SINGLE
    assert resolve_topology({"MASTER_ADDR": "localhost"}, 2).mode == ONE_NODE
    worker = resolve_topology(
        {"TORCHELASTIC_RUN_ID": "x", "RANK": "3", "WORLD_SIZE": "4", "LOCAL_WORLD_SIZE": "2"}, 2
    )
    assert worker.mode == INSIDE_LAUNCHER
    assert (worker.nodes, worker.node_rank, worker.global_rank) == (2, 1, 3)


def test_a_multi_gpu_node_without_variables_says_how_to_use_them_all() -> None:
    notes = resolve_topology({}, 4).notes
    assert notes and "MASTER_ADDR=localhost" in notes[0] and "--gpus_per_node 4" in notes[0]


def test_per_process_launchers_hand_the_trainer_torch_variables() -> None:
    slurm = resolve_topology(
        {
            **SLURM_STEP,
            "SLURM_PROCID": "5",
            "SLURM_LOCALID": "1",
            "SLURM_NTASKS": "8",
            "SLURM_STEP_TASKS_PER_NODE": "4(x2)",
        },
        4,
    )
    assert slurm.worker_env == {
        "RANK": "5",
        "WORLD_SIZE": "8",
        "LOCAL_RANK": "1",
        "LOCAL_WORLD_SIZE": "4",
        "MASTER_ADDR": "gpu-07",
        "MASTER_PORT": "19242",
    }
    env = distributed_environment({"PATH": "/bin"}, slurm, on_cpu=False)
    assert env["RANK"] == "5" and "ACCELERATE_USE_CPU" not in env


def test_kubeflow_variables_never_reach_torchrun() -> None:
    topology = resolve_topology(
        {"PET_NNODES": "2", "PET_NODE_RANK": "0", "PET_MASTER_ADDR": "m.invalid"}, 0
    )
    env = distributed_environment(
        {"PET_NNODES": "2", "PET_RDZV_ID": "abc", "PATH": "/bin"}, topology, on_cpu=True
    )
    assert not [name for name in env if name.startswith("PET_")]
    assert env["ACCELERATE_USE_CPU"] == "true"
    assert env["PATH"] == "/bin"


def test_slurm_task_counts() -> None:
    assert tasks_per_node("2(x3),1") == [2, 2, 2, 1]
    assert tasks_per_node("4") == [4]
    with pytest.raises(ValueError):
        tasks_per_node("x")


def test_mixed_precision_follows_the_yaml() -> None:
    assert mixed_precision_for({"bf16": True}) == "bf16"
    assert mixed_precision_for({"bf16": "auto"}) == "bf16"
    assert mixed_precision_for({"fp16": True, "bf16": False}) == "fp16"
    assert mixed_precision_for({"bf16": False, "fp16": False}) == "no"
