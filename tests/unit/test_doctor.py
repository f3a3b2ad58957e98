"""`vlm-tui doctor` and the lines that show the detected topology.

Network checks only touch 127.0.0.1; names that must not resolve end in `.invalid`.
"""

from __future__ import annotations

import io
import socket
from pathlib import Path

import pytest

from tests.helpers import clean_environ
from vlm_tui import cli
from vlm_tui.core.host.detection import DISTRIBUTED_LINE, detect, topology_lines
from vlm_tui.core.host.topology import resolve_topology
from vlm_tui.core.request.settings import Settings
from vlm_tui.headless import run_doctor


def doctor_output(environ: dict[str, str], workdir: Path, **settings: object) -> tuple[int, str]:
    out = io.StringIO()
    explicit = frozenset(settings)
    code = run_doctor(Settings(**settings, explicit=explicit), environ, workdir, out)  # type: ignore[arg-type]
    return code, out.getvalue()


def test_doctor_on_a_plain_node_passes_and_lists_each_check(tmp_path: Path) -> None:
    code, text = doctor_output(clean_environ(), tmp_path)
    assert code == 0, text
    for name in ("python:", "torch:", "accelerate:", "axolotl:", "GPUs:", "output folder:"):
        assert name in text
    assert text.splitlines()[-1].startswith("7 checks: 0 failed")
    assert not (tmp_path / "outputs").exists()  # checked, never created


def test_doctor_on_a_worker_without_master_fails_the_reachability_check(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    environ = clean_environ(
        {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": "2", "RANK": "1"}
    )
    code, text = doctor_output(environ, tmp_path, rendezvous_timeout=5)
    assert code == 1
    failed = [line for line in text.splitlines() if line.startswith("FAIL")]
    assert len(failed) == 1 and failed[0].startswith("FAIL  master reachable:")
    assert "loopback" in failed[0]  # the likeliest cause, named


def test_doctor_on_the_master_finds_its_port_taken(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        environ = clean_environ(
            {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": "2", "RANK": "0"}
        )
        code, text = doctor_output(environ, tmp_path)
    assert code == 1
    assert any(line.startswith("FAIL  master port:") for line in text.splitlines()), text


def test_a_single_process_run_ignores_a_taken_master_port(tmp_path: Path) -> None:
    # No rendezvous in a single process: an exported MASTER_PORT must not block it.
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        environ = clean_environ({"MASTER_PORT": str(squatter.getsockname()[1])})
        code, text = doctor_output(environ, tmp_path)
    assert code == 0, text
    assert "master port" not in text


def test_doctor_with_inconsistent_variables_is_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    for name, value in clean_environ({"WORLD_SIZE": "2", "RANK": "2"}).items():
        monkeypatch.setenv(name, value)
    assert cli.main(["doctor"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["vlm-tui: error: RANK: is 2 but WORLD_SIZE is 2: ranks run 0..1"]


def test_the_guide_lines_stay_the_guides_and_the_derivation_follows() -> None:
    environ = {
        "MASTER_ADDR": "gpu-node-0.example.invalid",
        "MASTER_PORT": "29500",
        "RANK": "1",
        "WORLD_SIZE": "4",
        "LOCAL_RANK": "0",
    }
    topology = resolve_topology(environ, 1)
    lines = topology_lines(topology, detect(environ), 29500)
    assert lines[:5] == [
        DISTRIBUTED_LINE,
        "  MASTER_ADDR: gpu-node-0.example.invalid",
        "  RANK: 1",
        "  WORLD_SIZE: 4",
        "  LOCAL_RANK: 0",
    ]
    assert lines[5] == (
        "  => 4 nodes x 1 process = 4 processes; this node: 1;"
        " master: gpu-node-0.example.invalid:29500"
    )
    assert "node rank from RANK" in lines[6]


def test_inside_a_launcher_the_line_says_so() -> None:
    environ = {"TORCHELASTIC_RUN_ID": "job", "RANK": "1", "WORLD_SIZE": "2"}
    lines = topology_lines(resolve_topology(environ, 0), detect(environ), None)
    assert lines[0].endswith("already started by torchrun: running the trainer directly")
    assert "  RANK: 1" in lines
