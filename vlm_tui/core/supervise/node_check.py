"""Cross-node consistency before a multi-node training: every node trains with the same
vlm-tui, axolotl, torch, transformers and accelerate and the same config, or none trains.

Each node's supervisor records what it runs (records.node_check_file) in node 0's run folder
before its training starts. Node 0 starts its own at once (the other nodes' pre-flight waits for
its rendezvous port to open) and, while that waits in the rendezvous for the others, compares
the records as they come: once every node has recorded it writes its verdict, and when a node
differs it ends its training before the rendezvous completes and records the run failed with
one line naming the node and the difference. Every other node waits for that verdict before it
starts its training, so a refusal ends every node within a poll, and nothing is trained.

Where node k cannot see node 0's run folder (runs/ not shared; a SLURM job's node always can,
it records inside node 0's folder), nothing can be compared: node k says so in one line and
trains; node 0 says so once the training is under way without that node's record.

Versions come from the installed packages' metadata: nothing is imported.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import itertools
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from vlm_tui.core.records.command_file import RecordedTopology
from vlm_tui.core.records.folder import TERMINAL_STATES, RunPaths
from vlm_tui.core.records.node_check_file import (
    REFUSED,
    SAME,
    SKIPPED,
    NodeRecord,
    Verdict,
    read_node_records,
    read_verdict,
    write_node_record,
    write_verdict,
)
from vlm_tui.core.records.status_file import read_status
from vlm_tui.core.request.axolotl_config import load_axolotl_yaml
from vlm_tui.core.request.trackers import RUN_NAME_KEYS
from vlm_tui.core.supervise.node_recorder import find_master_run

# The distributions whose versions must agree across nodes, in the order lines name them.
CHECKED_PACKAGES = ("vlm-tui", "axolotl", "torch", "transformers", "accelerate")
NOT_INSTALLED = "not installed"
# For tests only: "axolotl=0.18.0,torch=2.0.0" makes this node record those versions instead of
# the installed ones, so a test can play a node with a different stack on one machine.
FAKE_VERSIONS_VARIABLE = "VLM_TUI_TEST_FAKE_VERSIONS"
# Keys whose values differ between the nodes of one run by design, left out of the hash:
# output_dir (node k lets axolotl write into its own run folder, never the shared output),
# each dataset's path (the run's own converted copy inside each node's run folder) and the
# trackers' run names (named after each node's run folder).
NODE_SPECIFIC_KEYS = ("output_dir", *RUN_NAME_KEYS.values())
DATASET_LIST_KEYS = ("datasets", "test_datasets")
# How long node k looks for node 0's run folder beside its own: node 0 creates it before its
# rendezvous port opens, which node k's pre-flight waited for; the rest is a shared file
# system's delay in showing a new folder.
FIND_MASTER_S = 5.0
POLL_S = 0.2
# The rendezvous timeout when the launch command names none (settings' default).
DEFAULT_WAIT_S = 600.0
_RDZV_TIMEOUT = re.compile(r"(?:^|,)timeout=(\d+)")
# Digits of the config's hash shown in a line.
SHOWN_DIGITS = 12


def installed_versions(environ: Mapping[str, str]) -> dict[str, str]:
    """This Python's versions of CHECKED_PACKAGES (and a test's fakes, see
    FAKE_VERSIONS_VARIABLE), read from their metadata without importing them."""
    versions = {}
    for name in CHECKED_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = NOT_INSTALLED
    for pair in environ.get(FAKE_VERSIONS_VARIABLE, "").split(","):
        name, _, version = pair.partition("=")
        if name.strip() and version.strip():
            versions[name.strip()] = version.strip()
    return versions


def _without_path(entry: object) -> object:
    return {k: v for k, v in entry.items() if k != "path"} if isinstance(entry, dict) else entry


def config_fingerprint(config: Mapping[str, Any]) -> str:
    """sha256 of the config in a canonical form (sorted keys, JSON), without the keys that
    differ per node by design (NODE_SPECIFIC_KEYS and each dataset's path)."""
    kept: dict[str, Any] = {k: v for k, v in config.items() if k not in NODE_SPECIFIC_KEYS}
    for key in DATASET_LIST_KEYS:
        listed = kept.get(key)
        if isinstance(listed, list):
            kept[key] = [
                {k: v for k, v in entry.items() if k != "path"}
                if isinstance(entry, dict)
                else entry
                for entry in listed
            ]
    text = json.dumps(kept, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def node_record(
    node_rank: int, host: str, config_path: Path, environ: Mapping[str, str]
) -> NodeRecord:
    """What this node trains with."""
    return NodeRecord(
        node_rank=node_rank,
        host=host,
        versions=installed_versions(environ),
        config_sha256=config_fingerprint(load_axolotl_yaml(config_path)),
    )


def difference(node: NodeRecord, master: NodeRecord) -> str | None:
    """The first way `node` differs from node 0, as "axolotl 0.18.0, node 0 has 0.19.0"."""
    for name in CHECKED_PACKAGES:
        own = node.versions.get(name, NOT_INSTALLED)
        theirs = master.versions.get(name, NOT_INSTALLED)
        if own != theirs:
            return f"{name} {own}, node 0 has {theirs}"
    if node.config_sha256 != master.config_sha256:
        return (
            f"config sha256 {node.config_sha256[:SHOWN_DIGITS]},"
            f" node 0 has {master.config_sha256[:SHOWN_DIGITS]}"
        )
    return None


def compare(records: Mapping[int, NodeRecord], nodes: int) -> Verdict | None:
    """Node 0's verdict once every node 0..nodes-1 has recorded (None before)."""
    if any(rank not in records for rank in range(nodes)):
        return None
    master = records[0]
    for rank in range(1, nodes):
        node = records[rank]
        found = difference(node, master)
        if found is not None:
            return Verdict(REFUSED, f"node {rank} ({node.host}): {found}")
    stack = ", ".join(f"{name} {master.versions.get(name)}" for name in CHECKED_PACKAGES)
    return Verdict(
        SAME,
        f"all {nodes} nodes run {stack} and the same config"
        f" (sha256 {master.config_sha256[:SHOWN_DIGITS]})",
    )


def rendezvous_wait_s(argv: Sequence[str]) -> float:
    """The launch's rendezvous timeout (`--rdzv_conf timeout=N`), which bounds every wait."""
    for flag, value in itertools.pairwise(argv):
        if flag == "--rdzv_conf":
            found = _RDZV_TIMEOUT.search(value)
            if found:
                return float(found.group(1))
    return DEFAULT_WAIT_S


@dataclass
class MasterCheck:
    """Node 0's side: its own record, then a verdict once every node recorded."""

    paths: RunPaths
    nodes: int
    wait_s: float
    clock: Callable[[], float] = time.monotonic
    started_at: float | None = None
    verdict: Verdict | None = None

    def record(self, own: NodeRecord) -> None:
        write_node_record(self.paths.root, own)
        self.started_at = self.clock()

    def poll(self, *, training_started: bool) -> Verdict | None:
        """The verdict, the one time it is reached (written for the waiting nodes)."""
        if self.verdict is not None:
            return None
        records = read_node_records(self.paths.root)
        verdict = compare(records, self.nodes)
        if verdict is None:
            now = self.clock()
            waited = now - (now if self.started_at is None else self.started_at)
            missing = ", ".join(str(k) for k in range(1, self.nodes) if k not in records)
            if training_started:
                # Every node joined the rendezvous, so the missing ones started without
                # recording here: their runs/ is not this one.
                verdict = Verdict(
                    SKIPPED,
                    f"versions and config not compared: node {missing} recorded nothing in"
                    " this run folder (runs/ is not shared with node 0)",
                )
            elif waited >= self.wait_s:
                verdict = Verdict(
                    SKIPPED,
                    f"versions and config not compared: no record from node {missing}"
                    f" within {int(self.wait_s)} s",
                )
        if verdict is not None:
            self.verdict = verdict
            write_verdict(self.paths.root, verdict)
        return verdict


def worker_verdict(
    paths: RunPaths,
    topology: RecordedTopology,
    created_at: datetime | None,
    own: NodeRecord,
    *,
    wait_s: float,
    cancelled: Callable[[], bool],
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Verdict:
    """Node k's side: record in node 0's run folder, then wait for node 0's verdict (bounded by
    `wait_s`, and by node 0's run ending without one)."""
    started = clock()
    master = find_master_run(paths, topology, created_at)
    while master is None and clock() - started < FIND_MASTER_S and not cancelled():
        sleep(POLL_S)
        master = find_master_run(paths, topology, created_at)
    if master is None:
        return Verdict(
            SKIPPED,
            "versions and config not compared with node 0: its run folder is not under this"
            " node's runs/ (runs/ is not shared)",
        )
    write_node_record(master.root, own)
    while not cancelled():
        verdict = read_verdict(master.root)
        if verdict is not None:
            return verdict
        if read_status(master).get("state") in TERMINAL_STATES:
            return Verdict(SKIPPED, "versions and config not compared: node 0's run ended")
        if clock() - started >= wait_s:
            break
        sleep(POLL_S)
    return Verdict(
        SKIPPED, f"versions and config not compared: no word from node 0 within {int(wait_s)} s"
    )
