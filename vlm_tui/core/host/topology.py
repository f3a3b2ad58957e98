"""Where this node sits in the job: nodes, its rank, processes per node, the master, and why.

Cluster environments describe the same job in different variables with different meanings
(RANK is a node index in the guide and in Kubeflow v1, a process index under torchrun, SLURM's
one-task-per-GPU steps and MPI). `accelerate launch` reads none of them, so each node would train
alone if we passed them through; this module turns whichever is present into one Topology, and
every value remembers the variable it came from so the user can see why we chose it.

Sources, first match wins (the README lists the same order):
1. a torchrun worker (TORCHELASTIC_RUN_ID): run the trainer directly, never a nested launcher;
2. Open MPI, Intel MPI/MPICH (PMI) or MVAPICH ranks;
3. SLURM inside an `srun` step (a batch script outside srun is refused for several nodes);
4. Kubeflow (PET_NNODES and friends);
5. SageMaker (SM_HOSTS, SM_CURRENT_HOST);
6. the guide's variables (MASTER_ADDR, MASTER_PORT, WORLD_SIZE, RANK, NODE_RANK, LOCAL_RANK);
7. nothing: one process on this node.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from vlm_tui.core.errors import UserError
from vlm_tui.core.host.hostlist import MAX_HOSTS, expand_hostlist

DEFAULT_PORT = 29500
SAGEMAKER_PORT = 7777  # what SageMaker's own torch_distributed launcher uses

SINGLE = "single"  # one process on this node
ONE_NODE = "one_node"  # several processes on this node only
MULTI_NODE = "multi_node"  # several nodes
INSIDE_LAUNCHER = "inside_launcher"  # a launcher already started this process: run the trainer

# No job has more processes or nodes than this; a larger number is a typo.
MAX_PROCESSES = 1 << 20
# A whole number as a cluster writes it: ASCII digits (re's \d also matches other scripts').
_WHOLE = re.compile(r"\+?[0-9]{1,19}", re.ASCII)
# One DNS label; "_" too, which /etc/hosts and container names use.
_HOST_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?", re.ASCII)
_ZONE = re.compile(r"[A-Za-z0-9_.-]{1,64}", re.ASCII)
ADDRESS_ALLOWED = "must be a host name or IP address, e.g. node-1.cluster or 10.0.0.1"

# SLURM step ids of the batch script itself and of the "extern" step: not an srun step.
_NOT_SRUN_STEPS = {"batch", "extern", "interactive", "4294967294", "4294967291", "4294967292"}


@dataclass(frozen=True)
class Topology:
    mode: str
    source: str  # "none", "torchrun", "open_mpi", "pmi", "mvapich", "slurm", "kubeflow", ...
    nodes: int = 1
    node_rank: int = 0
    processes_per_node: int = 1
    master_addr: str = "127.0.0.1"
    # None: one node and no MASTER_PORT given; a free port is picked at launch.
    master_port: int | None = None
    # This process's rank (inside a launcher), or the first rank on this node.
    global_rank: int = 0
    local_rank: int = 0
    # For each value above, where it came from: a variable name, "--gpus_per_node", "default".
    origins: dict[str, str] = field(default_factory=dict)
    # The variables the detection used, with their values, in the order they were read.
    evidence: tuple[tuple[str, str], ...] = ()
    # Only for INSIDE_LAUNCHER: the torch variables a trainer started directly must see.
    worker_env: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def world_size(self) -> int:
        return self.nodes * self.processes_per_node

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def uses_accelerate(self) -> bool:
        return self.mode in (ONE_NODE, MULTI_NODE)


def _shown(value: str, limit: int = 80) -> str:
    """A value quoted for a message: escapes for control characters, at most `limit` long."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def host_address(text: str) -> str:
    """A host name or an IPv4/IPv6 address, as launchers and getaddrinfo read them.

    Nothing a shell, a URL or an option parser reads specially: no spaces, no ports, no
    scheme, no leading '-', ASCII only (an international name goes in its xn-- form).
    """
    address, _, zone = text.partition("%")
    try:
        ipaddress.ip_address(address)
    except ValueError:
        pass
    else:
        if not zone or _ZONE.fullmatch(zone):
            return text
        raise ValueError(ADDRESS_ALLOWED)
    name = text[:-1] if text.endswith(".") else text
    labels = name.split(".")
    if (
        len(name) > 253
        or not all(_HOST_LABEL.fullmatch(label) for label in labels)
        # All digits at the end is an IP address, and this is not a valid one ("999.1.1.1").
        or labels[-1].isdigit()
    ):
        raise ValueError(ADDRESS_ALLOWED)
    return text


class _Reader:
    """Reads variables, remembering which were used; every bad value is one UserError."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.evidence: list[tuple[str, str]] = []

    def text(self, name: str) -> str | None:
        value = self.environ.get(name, "").strip()
        if not value:
            return None
        if all(name != seen for seen, _ in self.evidence):
            self.evidence.append((name, value))
        return value

    def integer(self, name: str, low: int, high: int = MAX_PROCESSES) -> int | None:
        value = self.text(name)
        if value is None:
            return None
        if not _WHOLE.fullmatch(value) or not low <= int(value) <= high:
            raise UserError(
                name, f"must be a whole number from {low} to {high} (got {_shown(value)})"
            )
        return int(value)

    def address(self, name: str) -> str | None:
        value = self.text(name)
        if value is None:
            return None
        try:
            return host_address(value)
        except ValueError as error:
            raise UserError(name, f"{error} (got {_shown(value)})") from None

    def port(self, name: str) -> int | None:
        return self.integer(name, 1, 65535)


@dataclass(frozen=True)
class _PerNode:
    count: int
    origin: str


def _processes_per_node(
    reader: _Reader,
    gpu_count: int,
    gpus_per_node: int | None,
    variable: str | None = "NPROC_PER_NODE",
) -> _PerNode:
    """Processes on each node: the flag, then NPROC_PER_NODE (or the cluster's own), then GPUs."""
    if gpus_per_node is not None:
        return _PerNode(gpus_per_node, "--gpus_per_node")
    raw = None if variable is None else reader.text(variable)
    if raw is not None and raw.lower() not in ("auto", "gpu"):
        assert variable is not None
        value = reader.integer(variable, 1, 4096)
        assert value is not None
        return _PerNode(value, variable)
    if gpu_count > 0:
        return _PerNode(gpu_count, "GPUs visible on this node")
    return _PerNode(1, "no GPU: one process per node")


def _mode(nodes: int, per_node: int) -> str:
    if nodes > 1:
        return MULTI_NODE
    return ONE_NODE if per_node > 1 else SINGLE


def resolve_topology(
    environ: Mapping[str, str], gpu_count: int, gpus_per_node: int | None = None
) -> Topology:
    """The job as this node's environment describes it; UserError names the variable to fix."""
    reader = _Reader(environ)
    if reader.text("TORCHELASTIC_RUN_ID") is not None:
        return _torchrun_worker(reader)
    for size_name, names, source in _MPI_FLAVOURS:
        size = reader.integer(size_name, 1)
        if size is not None and size > 1:
            return _mpi(reader, size_name, names, source, gpu_count, gpus_per_node)
    if reader.text("SLURM_JOB_ID") is not None:
        slurm = _slurm(reader, gpu_count, gpus_per_node)
        if slurm is not None:
            return slurm
    if reader.text("PET_NNODES") is not None:
        return _kubeflow(reader, gpu_count, gpus_per_node)
    if reader.text("SM_HOSTS") is not None and reader.text("SM_CURRENT_HOST") is not None:
        return _sagemaker(reader, gpu_count, gpus_per_node)
    guide = ("MASTER_ADDR", "RANK", "WORLD_SIZE", "LOCAL_RANK", "NODE_RANK")
    if any(environ.get(name, "").strip() for name in guide):
        return _guide(reader, gpu_count, gpus_per_node)
    return _nothing(reader, gpu_count, gpus_per_node)


def _nothing(reader: _Reader, gpu_count: int, gpus_per_node: int | None) -> Topology:
    # The guide's single GPU mode; more processes only when asked for explicitly.
    explicit = gpus_per_node is not None or reader.text("NPROC_PER_NODE") is not None
    per_node = _processes_per_node(reader, gpu_count, gpus_per_node) if explicit else None
    notes: tuple[str, ...] = ()
    if per_node is None:
        per_node = _PerNode(1, "default")
        if gpu_count > 1:
            notes = (
                f"{gpu_count} GPUs visible but only one is used; set MASTER_ADDR=localhost"
                f" or pass --gpus_per_node {gpu_count} to train on all of them",
            )
    port = reader.port("MASTER_PORT")
    return Topology(
        mode=_mode(1, per_node.count),
        source="none",
        processes_per_node=per_node.count,
        master_port=port,
        origins={"processes_per_node": per_node.origin},
        evidence=tuple(reader.evidence),
        notes=notes,
    )


def _torchrun_worker(reader: _Reader) -> Topology:
    world = reader.integer("WORLD_SIZE", 1)
    rank = reader.integer("RANK", 0)
    if world is None or rank is None:
        missing = "WORLD_SIZE" if world is None else "RANK"
        raise UserError(missing, "is not set, yet TORCHELASTIC_RUN_ID says torchrun started us")
    if rank >= world:
        raise UserError("RANK", f"is {rank} but WORLD_SIZE is {world}: ranks run 0..{world - 1}")
    local_rank = reader.integer("LOCAL_RANK", 0) or 0
    local_world = reader.integer("LOCAL_WORLD_SIZE", 1) or 1
    if world % local_world:
        raise UserError(
            "LOCAL_WORLD_SIZE", f"is {local_world}, which does not divide WORLD_SIZE {world}"
        )
    nodes = reader.integer("GROUP_WORLD_SIZE", 1) or world // local_world
    node_rank = reader.integer("GROUP_RANK", 0)
    return Topology(
        mode=INSIDE_LAUNCHER,
        source="torchrun",
        nodes=nodes,
        node_rank=rank // local_world if node_rank is None else node_rank,
        processes_per_node=local_world,
        master_addr=reader.address("MASTER_ADDR") or "127.0.0.1",
        master_port=reader.port("MASTER_PORT"),
        global_rank=rank,
        local_rank=local_rank,
        origins={"world_size": "WORLD_SIZE", "global_rank": "RANK", "local_rank": "LOCAL_RANK"},
        evidence=tuple(reader.evidence),
    )


# (size variable, (rank, local rank, local size), source name)
_MPI_FLAVOURS = (
    (
        "OMPI_COMM_WORLD_SIZE",
        ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE"),
        "open_mpi",
    ),
    ("PMI_SIZE", ("PMI_RANK", "MPI_LOCALRANKID", "MPI_LOCALNRANKS"), "pmi"),
    (
        "MV2_COMM_WORLD_SIZE",
        ("MV2_COMM_WORLD_RANK", "MV2_COMM_WORLD_LOCAL_RANK", "MV2_COMM_WORLD_LOCAL_SIZE"),
        "mvapich",
    ),
)


def _mpi(
    reader: _Reader,
    size_name: str,
    names: tuple[str, str, str],
    source: str,
    gpu_count: int,
    gpus_per_node: int | None,
) -> Topology:
    size = reader.integer(size_name, 1)
    assert size is not None
    rank_name, local_rank_name, local_size_name = names
    rank = reader.integer(rank_name, 0)
    if rank is None:
        raise UserError(rank_name, f"is not set, yet {size_name} is")
    if rank >= size:
        raise UserError(rank_name, f"is {rank} but {size_name} is {size}")
    local_size = reader.integer(local_size_name, 1) or 1
    local_rank = reader.integer(local_rank_name, 0) or 0
    all_local = local_size == size
    address = reader.address("MASTER_ADDR")
    if address is None and not all_local:
        raise UserError(
            "MASTER_ADDR",
            "is required: MPI names no master; export the first host's address to every rank"
            " (mpirun -x MASTER_ADDR -x MASTER_PORT)",
        )
    port = reader.port("MASTER_PORT") or DEFAULT_PORT
    master = address or "127.0.0.1"
    origins = {"master_addr": "MASTER_ADDR" if address else "default", "nodes": size_name}
    if local_size == 1:
        # One MPI rank per node: it is the node's launcher, like the guide's RANK per node.
        per_node = _processes_per_node(reader, gpu_count, gpus_per_node)
        return _per_node(
            source,
            reader,
            nodes=size,
            node_rank=rank,
            per_node=per_node,
            master=master,
            port=port,
            origins={**origins, "node_rank": rank_name, "processes_per_node": per_node.origin},
        )
    if size % local_size:
        raise UserError(local_size_name, f"is {local_size}, which does not divide {size_name}")
    # One MPI rank per GPU: MPI is the launcher; each rank runs the trainer itself.
    return _per_process(
        source,
        reader,
        world=size,
        rank=rank,
        local_rank=local_rank,
        local_world=local_size,
        master=master,
        port=port,
        origins={**origins, "global_rank": rank_name, "local_rank": local_rank_name},
    )


def _per_process(
    source: str,
    reader: _Reader,
    *,
    world: int,
    rank: int,
    local_rank: int,
    local_world: int,
    master: str,
    port: int,
    origins: dict[str, str],
) -> Topology:
    return Topology(
        mode=INSIDE_LAUNCHER,
        source=source,
        nodes=world // local_world,
        node_rank=rank // local_world,
        processes_per_node=local_world,
        master_addr=master,
        master_port=port,
        global_rank=rank,
        local_rank=local_rank,
        origins=origins,
        evidence=tuple(reader.evidence),
        worker_env={
            "RANK": str(rank),
            "WORLD_SIZE": str(world),
            "LOCAL_RANK": str(local_rank),
            "LOCAL_WORLD_SIZE": str(local_world),
            "MASTER_ADDR": master,
            "MASTER_PORT": str(port),
        },
    )


def _per_node(
    source: str,
    reader: _Reader,
    *,
    nodes: int,
    node_rank: int,
    per_node: _PerNode,
    master: str,
    port: int | None,
    origins: dict[str, str],
) -> Topology:
    """One launcher per node, starting the node's processes; its first rank follows."""
    return Topology(
        mode=_mode(nodes, per_node.count),
        source=source,
        nodes=nodes,
        node_rank=node_rank,
        processes_per_node=per_node.count,
        master_addr=master,
        master_port=port,
        global_rank=node_rank * per_node.count,
        origins=origins,
        evidence=tuple(reader.evidence),
    )


def tasks_per_node(text: str) -> list[int]:
    """SLURM's compact counts: '2(x3),1' is [2, 2, 2, 1]."""
    counts: list[int] = []
    for part in text.split(","):
        match = re.fullmatch(r"\s*([0-9]{1,7})(?:\(x([0-9]{1,7})\))?\s*", part, re.ASCII)
        if match is None or int(match.group(1)) < 1:
            raise ValueError(part)
        repeat = int(match.group(2) or 1)
        # A typo such as 2(x99999999) must not eat the memory.
        if len(counts) + repeat > MAX_HOSTS:
            raise ValueError(part)
        counts += [int(match.group(1))] * repeat
    return counts


def _slurm(reader: _Reader, gpu_count: int, gpus_per_node: int | None) -> Topology | None:
    nodes_name = "SLURM_STEP_NUM_NODES" if reader.text("SLURM_STEP_NUM_NODES") else "SLURM_NNODES"
    nodes = reader.integer(nodes_name, 1) or reader.integer("SLURM_JOB_NUM_NODES", 1) or 1
    step = reader.text("SLURM_STEP_ID")
    in_srun = step is not None and step.lower() not in _NOT_SRUN_STEPS
    if not in_srun or reader.text("SLURM_PROCID") is None:
        if nodes > 1:
            raise UserError(
                nodes_name,
                f"is {nodes}, but vlm-tui runs in the batch script outside srun, where every"
                " node would be node 0; start it with: srun --ntasks-per-node=1 vlm-tui ...",
            )
        return None  # one node outside srun: the other sources (or none) decide
    counts_name = next(
        (
            name
            for name in (
                "SLURM_NTASKS_PER_NODE",
                "SLURM_STEP_TASKS_PER_NODE",
                "SLURM_TASKS_PER_NODE",
            )
            if reader.text(name)
        ),
        None,
    )
    counts = [1]
    if counts_name is not None:
        try:
            counts = tasks_per_node(reader.text(counts_name) or "")
        except ValueError:
            raise UserError(counts_name, "is not a SLURM task count such as 2(x3),1") from None
    if len(set(counts)) != 1:
        raise UserError(counts_name or "SLURM_TASKS_PER_NODE", "differs between nodes")
    per_node_tasks = counts[0]
    master, master_origin = _slurm_master(reader)
    port = reader.port("MASTER_PORT")
    port_origin = "MASTER_PORT"
    if port is None:
        # The same on every node of the job and unlikely to collide with a neighbour's job.
        job = reader.text("SLURM_JOB_ID") or "0"
        port = 15000 + int(re.sub(r"\D", "", job)[-4:] or 0)
        port_origin = "SLURM_JOB_ID"
    procid = reader.integer("SLURM_PROCID", 0) or 0
    if per_node_tasks > 1:
        total = reader.integer("SLURM_STEP_NUM_TASKS", 1) or reader.integer("SLURM_NTASKS", 1)
        world = total or per_node_tasks * nodes
        if procid >= world:
            raise UserError("SLURM_PROCID", f"is {procid} but the step has {world} tasks")
        return _per_process(
            "slurm",
            reader,
            world=world,
            rank=procid,
            local_rank=reader.integer("SLURM_LOCALID", 0) or 0,
            local_world=per_node_tasks,
            master=master,
            port=port,
            origins={
                "global_rank": "SLURM_PROCID",
                "local_rank": "SLURM_LOCALID",
                "master_addr": master_origin,
                "master_port": port_origin,
            },
        )
    node_rank = reader.integer("SLURM_NODEID", 0)
    node_origin = "SLURM_NODEID"
    if node_rank is None:
        node_rank, node_origin = procid, "SLURM_PROCID"
    if node_rank >= nodes:
        raise UserError(node_origin, f"is {node_rank} but the step has {nodes} nodes")
    per_node = _processes_per_node(reader, gpu_count, gpus_per_node)
    return _per_node(
        "slurm",
        reader,
        nodes=nodes,
        node_rank=node_rank,
        per_node=per_node,
        master=master,
        port=port,
        origins={
            "nodes": nodes_name,
            "node_rank": node_origin,
            "processes_per_node": per_node.origin,
            "master_addr": master_origin,
            "master_port": port_origin,
        },
    )


def _slurm_master(reader: _Reader) -> tuple[str, str]:
    """MASTER_ADDR when exported, else the first host of the step's (or job's) node list."""
    address = reader.address("MASTER_ADDR")
    if address is not None:
        return address, "MASTER_ADDR"
    for name in ("SLURM_STEP_NODELIST", "SLURM_JOB_NODELIST", "SLURM_NODELIST"):
        text = reader.text(name)
        if text is None:
            continue
        try:
            hosts = expand_hostlist(text)
        except (ValueError, RecursionError) as error:  # HostlistError, or a 5000-digit range
            raise UserError(
                name, f"cannot be read as a SLURM node list: {_shown(str(error), 200)}"
            ) from None
        if hosts:
            try:
                return host_address(hosts[0]), name
            except ValueError:
                raise UserError(
                    name,
                    f"starts with {_shown(hosts[0])}, which is not a host name or IP address;"
                    " export MASTER_ADDR=<first node's address>",
                ) from None
    raise UserError("SLURM_JOB_NODELIST", "is not set; export MASTER_ADDR=<first node's address>")


def _nodes_spec(reader: _Reader, name: str) -> int:
    """torchrun's --nnodes: N or N:N; an elastic range cannot give a static rendezvous."""
    raw = reader.text(name) or ""
    low, sep, high = raw.partition(":")
    if sep and high != low:
        raise UserError(
            name,
            f"must be a node count such as 2 (elastic ranges such as {_shown(raw)} are not"
            " supported)",
        )
    if not _WHOLE.fullmatch(low) or not 1 <= int(low) <= MAX_PROCESSES:
        raise UserError(
            name, f"must be a node count from 1 to {MAX_PROCESSES}, such as 2 (got {_shown(raw)})"
        )
    return int(low)


def _kubeflow(reader: _Reader, gpu_count: int, gpus_per_node: int | None) -> Topology:
    nodes = _nodes_spec(reader, "PET_NNODES")
    node_rank = reader.integer("PET_NODE_RANK", 0)
    # PyTorchJob v1 also sets RANK to the pod's index; its WORLD_SIZE mixes conventions, so
    # it is never used here.
    node_origin = "PET_NODE_RANK"
    if node_rank is None:
        node_rank, node_origin = reader.integer("RANK", 0), "RANK"
    if node_rank is None:
        raise UserError("PET_NODE_RANK", "is not set (nor RANK): this pod's index is unknown")
    if node_rank >= nodes:
        raise UserError(node_origin, f"is {node_rank} but PET_NNODES is {nodes}")
    address = reader.address("PET_MASTER_ADDR")
    master_origin = "PET_MASTER_ADDR"
    if address is None:
        address, master_origin = reader.address("MASTER_ADDR"), "MASTER_ADDR"
    if address is None and nodes > 1:
        raise UserError("PET_MASTER_ADDR", f"is required for {nodes} nodes (nor MASTER_ADDR)")
    port = reader.port("PET_MASTER_PORT")
    port_origin = "PET_MASTER_PORT"
    if port is None:
        port, port_origin = reader.port("MASTER_PORT"), "MASTER_PORT"
    if port is None:
        port, port_origin = DEFAULT_PORT, "default"
    per_node = _processes_per_node(reader, gpu_count, gpus_per_node, "PET_NPROC_PER_NODE")
    return _per_node(
        "kubeflow",
        reader,
        nodes=nodes,
        node_rank=node_rank,
        per_node=per_node,
        master=address or "127.0.0.1",
        port=port,
        origins={
            "nodes": "PET_NNODES",
            "node_rank": node_origin,
            "processes_per_node": per_node.origin,
            "master_addr": master_origin if address else "default",
            "master_port": port_origin,
        },
    )


def _is_host(value: object) -> bool:
    try:
        return isinstance(value, str) and bool(host_address(value))
    except ValueError:
        return False


def _sagemaker(reader: _Reader, gpu_count: int, gpus_per_node: int | None) -> Topology:
    raw = reader.text("SM_HOSTS") or ""
    try:
        hosts = json.loads(raw)
    except (ValueError, RecursionError):  # not JSON, a 5000-digit number, [[[[...
        hosts = None
    if not isinstance(hosts, list) or not hosts or not all(_is_host(h) for h in hosts):
        raise UserError(
            "SM_HOSTS", f'must be a JSON list of host names such as ["algo-1"] (got {_shown(raw)})'
        )
    current = reader.text("SM_CURRENT_HOST") or ""
    if current not in hosts:
        raise UserError("SM_CURRENT_HOST", f"is {current!r}, which is not in SM_HOSTS")
    # CPU instances say SM_NUM_GPUS=0: then the GPUs seen (none) decide, like an unset value.
    gpus_variable = None if reader.text("SM_NUM_GPUS") == "0" else "SM_NUM_GPUS"
    per_node = _processes_per_node(reader, gpu_count, gpus_per_node, gpus_variable)
    port = reader.port("MASTER_PORT")
    node_rank = hosts.index(current)
    return _per_node(
        "sagemaker",
        reader,
        nodes=len(hosts),
        node_rank=node_rank,
        per_node=per_node,
        master=hosts[0],
        port=port or SAGEMAKER_PORT,
        origins={
            "nodes": "SM_HOSTS",
            "node_rank": "SM_CURRENT_HOST",
            "processes_per_node": per_node.origin,
            "master_addr": "SM_HOSTS",
            "master_port": "MASTER_PORT" if port else "default",
        },
    )


def _guide(reader: _Reader, gpu_count: int, gpus_per_node: int | None) -> Topology:
    """The guide's variables; WORLD_SIZE counts processes, as its table says."""
    address = reader.address("MASTER_ADDR")
    port = reader.port("MASTER_PORT")
    world = reader.integer("WORLD_SIZE", 1)
    rank = reader.integer("RANK", 0)
    node_rank = reader.integer("NODE_RANK", 0)
    local_rank = reader.integer("LOCAL_RANK", 0) or 0
    if local_rank:
        raise UserError(
            "LOCAL_RANK",
            f"is {local_rank}: vlm-tui starts every process of a node itself; run it once per"
            " node, with LOCAL_RANK=0 or unset",
        )
    per_node = _processes_per_node(reader, gpu_count, gpus_per_node)
    origins = {"processes_per_node": per_node.origin}
    if world is None:
        if rank or node_rank:
            raise UserError(
                "WORLD_SIZE",
                "is required with RANK or NODE_RANK: the number of processes in the whole job"
                " (nodes x processes per node)",
            )
        # The guide's option 2: MASTER_ADDR alone means this node with all its GPUs.
        nodes, this_node = 1, 0
        origins["nodes"] = "default"
    else:
        if world % per_node.count:
            raise UserError(
                "WORLD_SIZE",
                f"is {world}, not a multiple of the {per_node.count} processes per node"
                f" ({per_node.origin}); set NPROC_PER_NODE or --gpus_per_node",
            )
        nodes = world // per_node.count
        origins["nodes"] = f"WORLD_SIZE / {per_node.count} per node"
        if rank is not None and rank >= world:
            raise UserError(
                "RANK", f"is {rank} but WORLD_SIZE is {world}: ranks run 0..{world - 1}"
            )
        this_node = _guide_node_rank(rank, node_rank, nodes, per_node.count, world)
        origins["node_rank"] = "NODE_RANK" if node_rank is not None else "RANK"
        if rank is None and node_rank is None:
            origins["node_rank"] = "default"
    if nodes > 1 and address is None:
        raise UserError(
            "MASTER_ADDR",
            f"is required for {nodes} nodes: the address of the node with RANK 0, the same on"
            " every node",
        )
    if nodes > 1 and port is None:
        port = DEFAULT_PORT
        origins["master_port"] = "default"
    elif port is not None:
        origins["master_port"] = "MASTER_PORT"
    origins["master_addr"] = "MASTER_ADDR" if address else "default"
    return _per_node(
        "guide",
        reader,
        nodes=nodes,
        node_rank=this_node,
        per_node=per_node,
        master=address or "127.0.0.1",
        port=port,
        origins=origins,
    )


def _guide_node_rank(
    rank: int | None, node_rank: int | None, nodes: int, per_node: int, world: int
) -> int:
    if node_rank is not None:
        if node_rank >= nodes:
            raise UserError(
                "NODE_RANK",
                f"is {node_rank} but there are {nodes} nodes (WORLD_SIZE {world} /"
                f" {per_node} per node): node ranks run 0..{nodes - 1}",
            )
        return node_rank
    if rank is None:
        if nodes > 1:
            raise UserError(
                "RANK",
                f"is needed: WORLD_SIZE {world} with {per_node} process(es) per node means"
                f" {nodes} nodes; set RANK (or NODE_RANK) on each node, or NPROC_PER_NODE={world}"
                " for one node",
            )
        return 0
    # RANK may count nodes (the guide's examples) or processes (its table): keep each reading
    # that is possible, and ask when both are and they disagree.
    readings = set()
    if rank < nodes:
        readings.add(rank)
    if rank % per_node == 0:
        readings.add(rank // per_node)
    if len(readings) == 1:
        return readings.pop()
    if not readings:
        raise UserError(
            "RANK",
            f"is {rank}: neither a node index below {nodes} nor the first process of a node"
            f" (a multiple of {per_node}); set NODE_RANK",
        )
    node_reading, process_reading = rank, rank // per_node
    raise UserError(
        "NODE_RANK",
        f"is needed: RANK={rank} could be node {node_reading} (a rank per node) or node"
        f" {process_reading} (a rank per process); set NODE_RANK on every node",
    )
