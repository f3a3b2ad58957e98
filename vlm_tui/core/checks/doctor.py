"""Which pre-flight checks apply to this node, run before every launch and by `vlm-tui doctor`.

The checks themselves live in `preflight`; this module picks them from the topology: the port
test only where the rendezvous server will listen (node 0), the wait for the master only on
the other nodes, and no network at all for `--dry-run`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from vlm_tui.core.checks import preflight
from vlm_tui.core.checks.preflight import Check
from vlm_tui.core.host.hardware import Hardware
from vlm_tui.core.host.topology import DEFAULT_PORT, INSIDE_LAUNCHER, MULTI_NODE, SINGLE, Topology

MARKS = {"pass": "ok  ", "warn": "warn", "fail": "FAIL"}


def local_checks(
    topology: Topology, hardware: Hardware, output_dir: Path, environ: Mapping[str, str]
) -> list[Check]:
    """Checks that open no connection."""
    checks = [
        *preflight.check_versions(),
        preflight.check_gpus(hardware.gpu_names, topology.processes_per_node, hardware.note),
        preflight.check_output_writable(output_dir),
        preflight.check_shared_storage(output_dir, topology.nodes),
    ]
    checks += preflight.check_socket_ifnames(environ)
    return checks


def waits_for_master(topology: Topology) -> bool:
    """Nodes other than 0 of a job we launch wait for the master's port before launching."""
    return topology.mode == MULTI_NODE and topology.node_rank > 0


def network_checks(topology: Topology, *, wait_s: float) -> list[Check]:
    """Master address, its port (on node 0) and, on other nodes, a bounded wait for it."""
    if topology.mode == SINGLE:
        # One process opens no rendezvous: an exported MASTER_PORT is not ours to check.
        return []
    if topology.nodes == 1 and topology.mode != INSIDE_LAUNCHER:
        port = topology.master_port
        # One node: only a port the user named can be taken; otherwise we pick a free one.
        return [preflight.check_port_free(port)] if port is not None else []
    if topology.mode == INSIDE_LAUNCHER:
        # The launcher that started us owns the rendezvous; only the address is ours to check.
        return [
            preflight.check_master_address(
                topology.master_addr, topology.master_port or DEFAULT_PORT, topology.node_rank
            )
        ]
    port = topology.master_port or DEFAULT_PORT
    address = preflight.check_master_address(topology.master_addr, port, topology.node_rank)
    if not waits_for_master(topology):
        return [address, preflight.check_port_free(port)]
    if address.outcome == "fail" or wait_s <= 0:
        return [address]
    wait = preflight.wait_for_master(topology.master_addr, port, wait_s)
    if wait.outcome == "fail" and address.outcome == "warn":
        # The likeliest cause, named first: a loopback MASTER_ADDR pointing at this worker.
        wait = replace(
            wait, detail=f"{wait.detail}; {address.detail}", fix=f"{address.fix}; {wait.fix}"
        )
    return [address, wait]


def check_line(check: Check) -> str:
    line = f"{MARKS[check.outcome]}  {check.name}: {check.detail}"
    if check.fix and check.outcome != "pass":
        line += f" -> {check.fix}"
    return line


def first_failure(checks: list[Check]) -> Check | None:
    return next((check for check in checks if check.outcome == "fail"), None)
