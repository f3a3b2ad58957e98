"""Cross-node consistency: what a node records, how node 0 compares, how node k waits.

Real files in real run folders; the other node is played by writing its record or verdict as
its supervisor would.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest
import yaml

from vlm_tui.core.records.command_file import RecordedTopology, write_command
from vlm_tui.core.records.folder import RunPaths
from vlm_tui.core.records.node_check_file import (
    REFUSED,
    SAME,
    SKIPPED,
    NodeRecord,
    Verdict,
    node_check_folder,
    read_node_records,
    read_verdict,
    write_node_record,
    write_verdict,
)
from vlm_tui.core.records.status_file import write_status
from vlm_tui.core.supervise.node_check import (
    CHECKED_PACKAGES,
    FAKE_VERSIONS_VARIABLE,
    FIND_MASTER_S,
    MasterCheck,
    compare,
    config_fingerprint,
    difference,
    installed_versions,
    node_record,
    rendezvous_wait_s,
    worker_verdict,
)

VERSIONS = {
    "vlm-tui": "0.1.0",
    "axolotl": "0.19.0",
    "torch": "2.13.0",
    "transformers": "5.16.1",
    "accelerate": "1.13.0",
}
# Two nodes' configs as record_run writes them: their own dataset copies, output folders and
# tracker run names (each named after its run folder).
NODE0_CONFIG = {
    "base_model": "/models/tiny",
    "datasets": [{"path": "/w/runs/r0/dataset.jsonl", "type": "chat_template"}],
    "learning_rate": 0.01,
    "output_dir": "/w/outputs/demo",
    "use_wandb": True,
    "wandb_name": "r0",
}
NODE1_CONFIG = {
    "wandb_name": "r0-node1",
    "use_wandb": True,
    "output_dir": "/w/runs/r0-node1/node-output",
    "learning_rate": 0.01,
    "datasets": [{"type": "chat_template", "path": "/w/runs/r0-node1/dataset.jsonl"}],
    "base_model": "/models/tiny",
}


def record(rank: int, host: str, **versions: str) -> NodeRecord:
    return NodeRecord(rank, host, {**VERSIONS, **versions}, config_fingerprint(NODE0_CONFIG))


def test_versions_are_the_installed_ones_and_a_test_may_fake_some() -> None:
    versions = installed_versions({})
    assert list(versions) == list(CHECKED_PACKAGES)
    assert versions["axolotl"] == importlib.metadata.version("axolotl")
    faked = installed_versions({FAKE_VERSIONS_VARIABLE: "axolotl=0.18.0, torch=1.0"})
    assert faked == {**versions, "axolotl": "0.18.0", "torch": "1.0"}


def test_the_config_hash_ignores_key_order_and_what_differs_per_node_by_design() -> None:
    assert config_fingerprint(NODE0_CONFIG) == config_fingerprint(NODE1_CONFIG)
    other_rate = {**NODE1_CONFIG, "learning_rate": 0.02}
    assert config_fingerprint(other_rate) != config_fingerprint(NODE0_CONFIG)
    other_type = {**NODE1_CONFIG, "datasets": [{"type": "alpaca", "path": "/x"}]}
    assert config_fingerprint(other_type) != config_fingerprint(NODE0_CONFIG)


def test_a_node_record_reads_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text(yaml.safe_dump(NODE1_CONFIG), encoding="utf-8")
    own = node_record(1, "host-b", config, {FAKE_VERSIONS_VARIABLE: "axolotl=0.18.0"})
    assert (own.node_rank, own.host, own.versions["axolotl"]) == (1, "host-b", "0.18.0")
    assert own.config_sha256 == config_fingerprint(NODE0_CONFIG)


def test_records_round_trip_and_broken_ones_are_skipped(tmp_path: Path) -> None:
    write_node_record(tmp_path, record(0, "host-a"))
    write_node_record(tmp_path, record(1, "host-b", axolotl="0.18.0"))
    (node_check_folder(tmp_path) / "node2-host-c.json").write_text('{"node_rank": 2, "ho')
    assert read_node_records(tmp_path) == {
        0: record(0, "host-a"),
        1: record(1, "host-b", axolotl="0.18.0"),
    }
    assert read_verdict(tmp_path) is None
    write_verdict(tmp_path, Verdict(REFUSED, "node 1 (host-b): torch 1, node 0 has 2"))
    assert read_verdict(tmp_path) == Verdict(REFUSED, "node 1 (host-b): torch 1, node 0 has 2")


def test_node_0_names_the_node_and_the_first_difference() -> None:
    master = record(0, "host-a")
    assert difference(record(1, "host-b"), master) is None
    assert difference(record(1, "b", axolotl="0.18.0"), master) == (
        "axolotl 0.18.0, node 0 has 0.19.0"
    )
    other_config = NodeRecord(1, "b", VERSIONS, "f" * 64)
    assert difference(other_config, master) == (
        f"config sha256 {'f' * 12}, node 0 has {master.config_sha256[:12]}"
    )
    records = {0: master, 1: record(1, "host-b"), 2: record(2, "host-c", accelerate="1.0")}
    assert compare(records, 3) == Verdict(
        REFUSED, "node 2 (host-c): accelerate 1.0, node 0 has 1.13.0"
    )
    same = compare({0: master, 1: record(1, "host-b")}, 2)
    assert same is not None and same.outcome == SAME
    assert same.line.startswith("all 2 nodes run vlm-tui 0.1.0, axolotl 0.19.0, torch 2.13.0")
    # Until every node has recorded there is no verdict.
    assert compare({0: master, 2: record(2, "c", axolotl="0")}, 3) is None


def test_the_wait_is_the_launch_commands_rendezvous_timeout() -> None:
    argv = ["accelerate", "launch", "--rdzv_conf", "timeout=300", "-m", "axolotl.cli.train"]
    assert rendezvous_wait_s(argv) == 300.0
    assert rendezvous_wait_s(["accelerate", "launch"]) == 600.0


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_node_0_waits_for_every_record_then_writes_its_verdict(tmp_path: Path) -> None:
    clock = Clock()
    check = MasterCheck(RunPaths(tmp_path), nodes=2, wait_s=60, clock=clock)
    check.record(record(0, "host-a"))
    assert check.poll(training_started=False) is None
    write_node_record(tmp_path, record(1, "host-b", axolotl="0.18.0"))
    verdict = Verdict(REFUSED, "node 1 (host-b): axolotl 0.18.0, node 0 has 0.19.0")
    assert check.poll(training_started=False) == verdict
    assert read_verdict(tmp_path) == verdict
    assert check.poll(training_started=False) is None  # said once


@pytest.mark.parametrize(
    ("started", "waited", "why"),
    [(True, 1.0, "recorded nothing in this run folder"), (False, 60.0, "within 60 s")],
)
def test_node_0_skips_a_node_that_never_records(
    tmp_path: Path, started: bool, waited: float, why: str
) -> None:
    clock = Clock()
    check = MasterCheck(RunPaths(tmp_path), nodes=2, wait_s=60, clock=clock)
    check.record(record(0, "host-a"))
    clock.now = waited
    verdict = check.poll(training_started=started)
    assert verdict is not None and verdict.outcome == SKIPPED
    assert "node 1" in verdict.line and why in verdict.line
    assert read_verdict(tmp_path) == verdict


def job_folders(tmp_path: Path) -> tuple[RunPaths, RunPaths, RecordedTopology]:
    """A job's run folder as `vlm-tui slurm` lays it out: node 0's, node 1's inside it."""
    master = RunPaths(tmp_path / "runs" / "20260101T000000Z-job")
    worker = RunPaths(master.root / "node1")
    worker.root.mkdir(parents=True)
    topology = {"nodes": 2, "master_addr": "10.0.0.1", "master_port": 29500}
    write_command(master, {"argv": [], "topology": {**topology, "node_rank": 0}})
    return master, worker, RecordedTopology(nodes=2, node_rank=1, **_addr(topology))


def _addr(topology: dict[str, object]) -> dict[str, object]:
    return {"master_addr": topology["master_addr"], "master_port": topology["master_port"]}


def test_node_k_records_in_node_0s_folder_and_takes_its_verdict(tmp_path: Path) -> None:
    master, worker, topology = job_folders(tmp_path)
    refused = Verdict(REFUSED, "node 1 (host-b): axolotl 0.18.0, node 0 has 0.19.0")
    clock = Clock()

    def node_0_answers(seconds: float) -> None:
        clock.now += seconds
        assert 1 in read_node_records(master.root)  # recorded before waiting
        write_verdict(master.root, refused)

    got = worker_verdict(
        worker,
        topology,
        None,
        record(1, "host-b", axolotl="0.18.0"),
        wait_s=60,
        cancelled=lambda: False,
        clock=clock,
        sleep=node_0_answers,
    )
    assert got == refused


def test_node_k_stops_waiting_when_node_0s_run_ended(tmp_path: Path) -> None:
    master, worker, topology = job_folders(tmp_path)
    write_status(master, {"state": "failed"})
    got = worker_verdict(worker, topology, None, record(1, "b"), wait_s=60, cancelled=lambda: False)
    assert got == Verdict(SKIPPED, "versions and config not compared: node 0's run ended")


def test_node_k_without_node_0s_folder_skips_the_check_in_one_line(tmp_path: Path) -> None:
    alone = RunPaths(tmp_path / "runs" / "20260101T000000Z-demo-node1")
    alone.root.mkdir(parents=True)
    topology = RecordedTopology(nodes=2, node_rank=1, master_addr="10.0.0.1", master_port=29500)
    clock = Clock()

    def tick(seconds: float) -> None:
        clock.now += seconds

    got = worker_verdict(
        alone,
        topology,
        None,
        record(1, "b"),
        wait_s=60,
        cancelled=lambda: False,
        clock=clock,
        sleep=tick,
    )
    assert got.outcome == SKIPPED and "runs/ is not shared" in got.line
    assert clock.now >= FIND_MASTER_S
    assert not node_check_folder(alone.root).exists()
