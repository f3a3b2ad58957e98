"""Two real "nodes" on 127.0.0.1 sharing one work folder (so one runs/), node 1 claiming another
axolotl through the recorder's test-only variable: node 0 refuses the run before training,
naming node 1, and both nodes end at once with exit 2.
"""

from __future__ import annotations

import importlib.metadata
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import free_port, guide_node_env, train_steps
from vlm_tui.core.records.node_check_file import REFUSED, read_node_records, read_verdict
from vlm_tui.core.supervise.node_check import FAKE_VERSIONS_VARIABLE

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("node-check")]
# Each node's command line, as the guide runs it on each machine.
NODE_ARGS = ("--no-ui", "--demo", "--skip-check", "--rendezvous_timeout", "300")


def test_a_node_with_another_axolotl_is_refused_by_node_0_with_the_node_named(
    demo_cache: Path, tmp_path: Path
) -> None:
    port = free_port()
    started = time.monotonic()
    nodes = []
    for rank in (0, 1):
        env = {**guide_node_env(demo_cache, rank, port), "LOCAL_RANK": "0"}
        if rank == 1:
            env[FAKE_VERSIONS_VARIABLE] = "axolotl=0.18.0"
        nodes.append(
            subprocess.Popen(
                [sys.executable, "-m", "vlm_tui", *NODE_ARGS],
                cwd=tmp_path,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    outputs, ended_after = [], []
    for node in nodes:
        outputs.append(node.communicate(timeout=600)[0])
        ended_after.append(time.monotonic() - started)
    # Measured, not asserted (no timed assertions): both end long before the 300 s timeout.
    print(f"node 0 ended after {ended_after[0]:.1f} s, node 1 after {ended_after[1]:.1f} s")

    installed = importlib.metadata.version("axolotl")
    line = f"node 1 ({socket.gethostname()}): axolotl 0.18.0, node 0 has {installed}"
    for node, output in zip(nodes, outputs, strict=True):
        assert node.returncode == 2, output[-4000:]
    assert f"[vlm-tui] nodes: {line}\n" in outputs[0]
    assert f"[vlm-tui] reason: {line}\n" in outputs[0]
    assert f"[vlm-tui] reason: node 0 refused the run: {line}\n" in outputs[1]

    runs = sorted((tmp_path / "runs").iterdir())
    node0_run, node1_run = runs
    assert node1_run.name.endswith("-node1")
    for run in runs:
        status = json.loads((run / "status.json").read_text())
        assert (status["state"], status["exit_code"]) == ("failed", 2)
        assert status["reason"].endswith(line)
    # The records and the verdict are in node 0's run folder, node 1's with its claimed version.
    records = read_node_records(node0_run)
    assert sorted(records) == [0, 1]
    assert records[0].versions["axolotl"] == installed
    assert records[1].versions["axolotl"] == "0.18.0"
    assert records[0].config_sha256 == records[1].config_sha256
    verdict = read_verdict(node0_run)
    assert verdict is not None and (verdict.outcome, verdict.line) == (REFUSED, line)
    # Nothing trained: node 1 never started its training, node 0's never left the rendezvous.
    assert "child_pid" not in json.loads((node1_run / "status.json").read_text())
    assert train_steps(node0_run) == []
    assert not (tmp_path / "outputs").exists()
