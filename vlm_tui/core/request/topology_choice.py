"""The topology a user picks in the form, expressed as the environment a node would have.

The form does not build a Topology itself: it writes the guide's variables (MASTER_ADDR,
MASTER_PORT, WORLD_SIZE, NODE_RANK, NPROC_PER_NODE) over the real environment and lets
`resolve_topology` decide, so a launch from the form and one from a shell with the same
variables behave alike, and the child sees the same variables.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vlm_tui.core.errors import UserError
from vlm_tui.core.request.settings import Validator, int_in, one_of

AUTO = "auto"
SINGLE_GPU = "single"
ONE_NODE = "one_node"
SEVERAL_NODES = "several_nodes"
CHOICES = (AUTO, SINGLE_GPU, ONE_NODE, SEVERAL_NODES)
CHOICE_LABELS = {
    AUTO: "auto (from the environment)",
    SINGLE_GPU: "single GPU",
    ONE_NODE: "one node, several GPUs",
    SEVERAL_NODES: "several nodes",
}

# Everything a launcher or cluster sets that `resolve_topology` reads; a choice other than auto
# replaces all of it, so a stale SLURM or torchrun variable cannot override the form.
_EXACT = ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK", "NODE_RANK")
_PREFIXES = ("SLURM_", "PET_", "OMPI_", "PMI_", "MV2_", "SM_", "TORCHELASTIC_")
_HOST = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.:_-]{0,251}[A-Za-z0-9])?$")
ONE_NODE_MASTER = "127.0.0.1"


@dataclass(frozen=True)
class TopologyChoice:
    kind: str = AUTO
    nodes: int | None = None
    node_rank: int | None = None
    master_addr: str | None = None
    master_port: int | None = None


def host(value: object) -> str:
    text = str(value).strip()
    if not _HOST.match(text):
        raise ValueError("must be a host name or IP address, e.g. node-1.cluster or 10.0.0.1")
    return text


def _check(name: str, validator: Validator, raw: str) -> Any:
    try:
        return validator(raw)
    except ValueError as error:
        raise UserError(name, f"{error} (got {raw!r})") from None


def choice_from_values(values: Mapping[str, str]) -> TopologyChoice:
    """Validate the form's text; UserError names the first bad field and what it accepts."""
    kind: str = _check("topology", one_of(CHOICES), values.get("topology") or AUTO)
    if kind != SEVERAL_NODES:
        port_text = (values.get("master_port") or "").strip()
        own_port = _check("master_port", int_in(1, 65535), port_text) if port_text else None
        return TopologyChoice(kind=kind, master_port=own_port if kind == ONE_NODE else None)
    nodes: int = _check("nodes", int_in(2, 4096), values.get("nodes") or "")
    rank_text = values.get("node_rank") or ""
    node_rank: int = _check("node_rank", int_in(0, nodes - 1), rank_text)
    address: str = _check("master_addr", host, values.get("master_addr") or "")
    port: int = _check("master_port", int_in(1, 65535), values.get("master_port") or "29500")
    return TopologyChoice(kind, nodes, node_rank, address, port)


def without_topology(environ: Mapping[str, str]) -> dict[str, str]:
    return {
        key: value
        for key, value in environ.items()
        if key not in _EXACT and key != "NPROC_PER_NODE" and not key.startswith(_PREFIXES)
    }


def environ_for(
    choice: TopologyChoice, environ: Mapping[str, str], processes_per_node: int
) -> dict[str, str]:
    """The environment that describes `choice` to `resolve_topology` and to the child."""
    if choice.kind == AUTO:
        return dict(environ)
    env = without_topology(environ)
    if choice.kind == ONE_NODE:
        # The guide's option 2: MASTER_ADDR alone is this node with all its processes.
        env["MASTER_ADDR"] = ONE_NODE_MASTER
        env["NPROC_PER_NODE"] = str(processes_per_node)
        if choice.master_port is not None:
            env["MASTER_PORT"] = str(choice.master_port)
    elif choice.kind == SEVERAL_NODES:
        assert choice.nodes is not None and choice.node_rank is not None
        env.update(
            MASTER_ADDR=str(choice.master_addr),
            MASTER_PORT=str(choice.master_port),
            WORLD_SIZE=str(choice.nodes * processes_per_node),
            NODE_RANK=str(choice.node_rank),
            NPROC_PER_NODE=str(processes_per_node),
        )
    return env
