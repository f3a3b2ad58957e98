"""The form's topology choice becomes the guide's variables, and resolve_topology agrees."""

from __future__ import annotations

import pytest

from vlm_tui.core.errors import UserError
from vlm_tui.core.host.topology import MULTI_NODE, ONE_NODE, SINGLE, resolve_topology
from vlm_tui.core.request.topology_choice import (
    TopologyChoice,
    choice_from_values,
    environ_for,
    without_topology,
)

CLUSTER = {
    "PATH": "/usr/bin",
    "SLURM_JOB_ID": "7",
    "SLURM_NNODES": "4",
    "MASTER_ADDR": "old.invalid",
    "RANK": "3",
    "WORLD_SIZE": "32",
    "NPROC_PER_NODE": "8",
    "TORCHELASTIC_RUN_ID": "x",
}


def test_auto_keeps_the_environment_as_it_is() -> None:
    assert environ_for(TopologyChoice(), CLUSTER, 8) == CLUSTER


def test_single_gpu_removes_every_launcher_variable() -> None:
    env = environ_for(choice_from_values({"topology": "single"}), CLUSTER, 8)
    assert env == {"PATH": "/usr/bin"}
    assert resolve_topology(env, gpu_count=8).mode == SINGLE


def test_one_node_is_the_guides_option_two() -> None:
    choice = choice_from_values({"topology": "one_node", "master_port": "29411"})
    env = environ_for(choice, CLUSTER, 2)
    assert env["MASTER_ADDR"] == "127.0.0.1" and env["NPROC_PER_NODE"] == "2"
    topology = resolve_topology(env, gpu_count=0)
    assert (topology.mode, topology.world_size, topology.master_port) == (ONE_NODE, 2, 29411)


def test_several_nodes_give_the_guides_variables_for_this_node() -> None:
    values = {
        "topology": "several_nodes",
        "nodes": "3",
        "node_rank": "2",
        "master_addr": "node0.invalid",
        "master_port": "29500",
    }
    env = environ_for(choice_from_values(values), CLUSTER, 4)
    assert "SLURM_JOB_ID" not in env and "TORCHELASTIC_RUN_ID" not in env
    topology = resolve_topology(env, gpu_count=4)
    assert topology.mode == MULTI_NODE
    assert (topology.nodes, topology.node_rank, topology.world_size) == (3, 2, 12)
    assert (topology.master_addr, topology.master_port) == ("node0.invalid", 29500)


@pytest.mark.parametrize(
    ("values", "field", "allowed"),
    [
        ({"topology": "cluster"}, "topology", "must be one of: auto, single"),
        ({"topology": "several_nodes", "nodes": "1"}, "nodes", "from 2 to 4096"),
        (
            {"topology": "several_nodes", "nodes": "2", "node_rank": "2"},
            "node_rank",
            "from 0 to 1",
        ),
        (
            {"topology": "several_nodes", "nodes": "2", "node_rank": "0", "master_addr": "a b"},
            "master_addr",
            "host name or IP address",
        ),
        (
            {
                "topology": "several_nodes",
                "nodes": "2",
                "node_rank": "0",
                "master_addr": "n.invalid",
                "master_port": "70000",
            },
            "master_port",
            "from 1 to 65535",
        ),
        ({"topology": "one_node", "master_port": "x"}, "master_port", "from 1 to 65535"),
    ],
)
def test_bad_values_name_the_field_and_what_it_accepts(
    values: dict[str, str], field: str, allowed: str
) -> None:
    with pytest.raises(UserError) as caught:
        choice_from_values(values)
    assert caught.value.field == field
    assert allowed in caught.value.message


def test_without_topology_keeps_unrelated_variables() -> None:
    assert without_topology({"HF_TOKEN": "x", "SM_HOSTS": "[]", "MV2_COMM_WORLD_SIZE": "2"}) == {
        "HF_TOKEN": "x"
    }
