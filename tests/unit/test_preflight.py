"""Pre-flight checks: each one on the case it exists for.

Real sockets only ever touch 127.0.0.1; names that must not resolve live under `.invalid`, and
non-local addresses come from a fake resolver (documentation range), so nothing leaves the host.
"""

from __future__ import annotations

import os
import re
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vlm_tui.core.checks import preflight
from vlm_tui.core.checks.preflight import (
    Check,
    check_gpus,
    check_master_address,
    check_output_writable,
    check_port_free,
    check_shared_storage,
    check_socket_ifnames,
    check_versions,
    nccl_selected_interfaces,
    wait_for_master,
)

H100 = "NVIDIA H100 80GB HBM3"


def assert_readable(check: Check) -> None:
    """Every text is one short line, and a pass needs no fix."""
    for text in (check.detail, check.fix):
        assert "\n" not in text and len(text) < 200, text
    assert check.detail
    assert (check.outcome == "pass") == (check.fix == ""), check


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen()
    yield server
    server.close()


# --- versions -------------------------------------------------------------------------------


def test_versions_real_environment() -> None:
    checks = check_versions()
    assert [c.name for c in checks] == ["python", "torch", "accelerate", "axolotl"]
    assert checks[0].outcome == "pass"
    assert checks[0].detail.startswith(f"Python {sys.version_info.major}.{sys.version_info.minor}")
    for check in checks:
        assert_readable(check)


def test_versions_missing_distribution_fails_with_the_install_hint() -> None:
    checks = check_versions(distributions={"torch": "2.13.0", "accelerate": "1.13.0"})
    by_name = {c.name: c for c in checks}
    assert by_name["torch"] == Check("torch", "pass", "torch 2.13.0")
    assert by_name["axolotl"].outcome == "fail"
    assert by_name["axolotl"].fix == "pip install 'vlm-tui[train]'"


def test_versions_missing_distribution_through_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    def version(name: str) -> str:
        if name == "axolotl":
            raise preflight.importlib.metadata.PackageNotFoundError(name)
        return "1.0"

    monkeypatch.setattr(preflight.importlib.metadata, "version", version)
    outcomes = {c.name: c.outcome for c in check_versions()}
    assert outcomes == {"python": "pass", "torch": "pass", "accelerate": "pass", "axolotl": "fail"}


def test_versions_old_python_fails() -> None:
    check = check_versions(python=(3, 10, 12), distributions={})[0]
    assert (check.name, check.outcome) == ("python", "fail")
    assert "3.10.12" in check.detail
    assert_readable(check)


# --- GPUs -----------------------------------------------------------------------------------


def test_gpus_none_warns_cpu_with_the_probe_reason() -> None:
    check = check_gpus([], 1, "no NVIDIA driver found (NVML missing): training runs on the CPU")
    assert check.outcome == "warn"
    assert check.detail == "training runs on the CPU (gloo): no NVIDIA driver found (NVML missing)"
    assert_readable(check)


def test_gpus_none_with_several_processes_still_only_warns() -> None:
    check = check_gpus([], 4, "")
    assert check.outcome == "warn"
    assert "4 CPU processes" in check.detail


def test_gpus_enough_pass_compactly() -> None:
    check = check_gpus([H100, H100], 2, "")
    assert check == Check("GPUs", "pass", f"2 x {H100}")
    mixed = check_gpus([H100, "NVIDIA A100-SXM4-40GB", H100], 2, "")
    assert mixed.detail == f"2 x {H100}, 1 x NVIDIA A100-SXM4-40GB, 2 used"


def test_gpus_fewer_than_processes_fail() -> None:
    check = check_gpus([H100], 2, "")
    assert check.outcome == "fail"
    assert check.detail == f"1 GPU (1 x {H100}) for 2 processes per node"
    assert "CUDA_VISIBLE_DEVICES" in check.fix
    assert_readable(check)


# --- master port ----------------------------------------------------------------------------


def test_port_taken_fails_and_suggests_a_port(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    for host in ("", "127.0.0.1"):
        check = check_port_free(port, host)
        assert check.outcome == "fail", host
        assert f"port {port} is already in use" in check.detail
        suggested = re.search(r"MASTER_PORT=(\d+)", check.fix)
        assert suggested and int(suggested[1]) != port
        assert_readable(check)
    # Whether the owner shows depends on privileges; when it does, it is this test process.
    if "pid" in check.fix:
        assert f"pid {os.getpid()}" in check.fix


def test_port_free_passes() -> None:
    port = free_port()
    check = check_port_free(port)
    assert check == Check("master port", "pass", f"port {port} is free on all interfaces")


def test_port_out_of_range_fails() -> None:
    assert check_port_free(0).outcome == "fail"
    assert check_port_free(70000).outcome == "fail"


# --- master address -------------------------------------------------------------------------


def fake_resolver(answer: str) -> Any:
    """Resolves one name to `answer` (no connection is ever opened to it); nothing else."""

    def resolve(host: str, port: int | None, *args: Any, **kwargs: Any) -> list[Any]:
        if host != "master.example.invalid":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        family = socket.AF_INET6 if ":" in answer else socket.AF_INET
        return [(family, socket.SOCK_STREAM, 6, "", (answer, port or 0))]

    return resolve


def test_master_address_that_does_not_resolve_fails() -> None:
    check = check_master_address("master.invalid", 29500, 1)
    assert check.outcome == "fail"
    assert check.detail.startswith("master.invalid does not resolve")
    assert "MASTER_ADDR" in check.fix
    assert_readable(check)


def test_master_address_loopback_on_a_worker_warns() -> None:
    # A warning, not a failure: all "nodes" on one host (a local test) is legitimate, and the
    # bounded wait for the master fails when it is not.
    check = check_master_address("127.0.0.1", 29500, 1)
    assert check.outcome == "warn"
    assert "loopback points at this host itself" in check.detail
    ipv6 = check_master_address("master.example.invalid", 29500, 2, resolve=fake_resolver("::1"))
    assert ipv6.outcome == "warn"


def test_master_address_loopback_on_the_master_passes() -> None:
    check = check_master_address("127.0.0.1", 29500, 0)
    assert check.outcome == "pass"
    assert_readable(check)


def test_master_address_elsewhere_warns_on_the_master_and_passes_on_a_worker() -> None:
    resolve = fake_resolver("192.0.2.10")
    master = check_master_address("master.example.invalid", 29500, 0, resolve=resolve)
    assert master.outcome == "warn"
    assert "192.0.2.10" in master.detail and "RANK" in master.fix
    assert_readable(master)
    worker = check_master_address("master.example.invalid", 29500, 1, resolve=resolve)
    assert worker.outcome == "pass"


def test_master_address_slow_resolver_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(preflight, "DNS_TIMEOUT_S", 0.2)

    def stuck(*args: Any, **kwargs: Any) -> list[Any]:
        time.sleep(3)
        return []

    started = time.monotonic()
    check = check_master_address("master.example.invalid", 29500, 1, resolve=stuck)
    assert check.outcome == "fail" and "no answer" in check.detail
    assert time.monotonic() - started < 2


# --- waiting for the master -----------------------------------------------------------------


def test_wait_for_master_times_out_within_a_bound() -> None:
    port = free_port()
    started = time.monotonic()
    check = wait_for_master("127.0.0.1", port, timeout_s=1.5)
    elapsed = time.monotonic() - started
    assert check.outcome == "fail"
    assert elapsed < 10  # a bound, not a speed target
    assert "MASTER_ADDR/MASTER_PORT" in check.fix and "RANK 0" in check.fix
    assert f"127.0.0.1:{port} did not accept a connection within 1.5 s" in check.detail
    assert_readable(check)


def test_wait_for_master_passes_when_the_master_comes_up_late() -> None:
    # Bound now but listening only later: until then a connect is refused, as before rank 0.
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    port = server.getsockname()[1]
    opener = threading.Timer(0.5, server.listen)
    opener.start()
    try:
        check = wait_for_master("127.0.0.1", port, timeout_s=8, interval_s=0.1)
    finally:
        opener.join()
        server.close()
    assert check.outcome == "pass", check
    assert f"127.0.0.1:{port} accepted a connection after" in check.detail
    assert "tries" in check.detail


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_wait_for_master_retry_count_with_a_fake_clock() -> None:
    fake = FakeTime()
    check = wait_for_master(
        "127.0.0.1", free_port(), 5, interval_s=1.0, clock=fake.clock, sleep=fake.sleep
    )
    assert check.outcome == "fail"
    assert fake.sleeps == [1.0] * 5
    assert "(6 tries," in check.detail


def test_wait_for_master_last_sleep_stops_at_the_deadline() -> None:
    fake = FakeTime()
    wait_for_master("127.0.0.1", free_port(), 2.5, clock=fake.clock, sleep=fake.sleep)
    assert fake.sleeps == [1.0, 1.0, 0.5]


def test_wait_for_master_first_try_with_a_fake_clock(listener: socket.socket) -> None:
    fake = FakeTime()
    port = listener.getsockname()[1]
    check = wait_for_master("127.0.0.1", port, 5, clock=fake.clock, sleep=fake.sleep)
    assert check.outcome == "pass"
    assert check.detail == f"127.0.0.1:{port} accepted a connection after 0.0 s (1 try)"
    assert fake.sleeps == []


# --- network interfaces ---------------------------------------------------------------------

INTERFACES = ["lo", "eth0", "docker0", "enp3s0"]


@pytest.mark.parametrize(
    ("value", "interfaces", "selected"),
    [
        ("eth0,en", INTERFACES, ["eth0", "enp3s0"]),
        ("^docker,lo", INTERFACES, ["eth0", "enp3s0"]),
        ("=eth0", INTERFACES, ["eth0"]),
        ("=eth", INTERFACES, []),
        ("eth", INTERFACES, ["eth0"]),
        ("eth0:29600", INTERFACES, ["eth0"]),
        ("^=lo", INTERFACES, ["eth0", "docker0", "enp3s0"]),
        ("ib", INTERFACES, []),
        ("^docker,lo", ["lo", "docker0"], []),
    ],
)
def test_nccl_selection_rules(value: str, interfaces: list[str], selected: list[str]) -> None:
    assert nccl_selected_interfaces(value, interfaces) == selected


@pytest.mark.parametrize(
    ("environ", "outcomes"),
    [
        ({}, []),
        ({"NCCL_SOCKET_IFNAME": "  "}, []),
        ({"NCCL_SOCKET_IFNAME": "eth0,en"}, [("NCCL_SOCKET_IFNAME", "pass")]),
        ({"NCCL_SOCKET_IFNAME": "^docker,lo"}, [("NCCL_SOCKET_IFNAME", "pass")]),
        ({"NCCL_SOCKET_IFNAME": "=eth0"}, [("NCCL_SOCKET_IFNAME", "pass")]),
        ({"NCCL_SOCKET_IFNAME": "ib"}, [("NCCL_SOCKET_IFNAME", "fail")]),
        ({"GLOO_SOCKET_IFNAME": "eth0"}, [("GLOO_SOCKET_IFNAME", "pass")]),
        ({"GLOO_SOCKET_IFNAME": "eth"}, [("GLOO_SOCKET_IFNAME", "fail")]),
        ({"GLOO_SOCKET_IFNAME": "eth0,eth9"}, [("GLOO_SOCKET_IFNAME", "fail")]),
        (
            {"NCCL_SOCKET_IFNAME": "en", "GLOO_SOCKET_IFNAME": "enp3s0"},
            [("NCCL_SOCKET_IFNAME", "pass"), ("GLOO_SOCKET_IFNAME", "pass")],
        ),
    ],
)
def test_socket_ifnames(environ: dict[str, str], outcomes: list[tuple[str, str]]) -> None:
    checks = check_socket_ifnames(environ, INTERFACES)
    assert [(c.name, c.outcome) for c in checks] == outcomes
    for check in checks:
        assert_readable(check)
        if check.outcome == "fail":
            assert "(have: lo, eth0, docker0, enp3s0)" in check.detail
            assert "e.g. eth0" in check.fix


def test_socket_ifnames_failure_names_the_missing_gloo_interface() -> None:
    (check,) = check_socket_ifnames({"GLOO_SOCKET_IFNAME": "eth0,eth9"}, INTERFACES)
    assert check.detail.startswith("GLOO_SOCKET_IFNAME names eth9,")


def test_socket_ifnames_default_reads_this_host() -> None:
    names = [name for _, name in socket.if_nameindex()]
    (check,) = check_socket_ifnames({"NCCL_SOCKET_IFNAME": f"={names[0]}"})
    assert check.outcome == "pass"
    (missing,) = check_socket_ifnames({"GLOO_SOCKET_IFNAME": "no-such-if0"})
    assert missing.outcome == "fail"


# --- output folder --------------------------------------------------------------------------


def test_output_not_yet_created_passes_and_creates_nothing(tmp_path: Path) -> None:
    target = tmp_path / "runs" / "first"
    check = check_output_writable(target)
    assert check.outcome == "pass"
    assert str(tmp_path) in check.detail
    assert list(tmp_path.iterdir()) == []


def test_output_existing_folder_passes(tmp_path: Path) -> None:
    assert check_output_writable(tmp_path) == Check(
        "output folder", "pass", f"{tmp_path} is writable"
    )


def test_output_under_a_file_fails(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    check = check_output_writable(blocker / "out")
    assert check.outcome == "fail" and "not a folder" in check.detail
    assert_readable(check)


def test_output_read_only_folder_fails(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        reason = "running as root: permissions are not enforced, a read-only folder stays writable"
        print(reason)
        pytest.skip(reason)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        check = check_output_writable(locked / "out")
    finally:
        locked.chmod(0o755)
    assert check.outcome == "fail"
    assert "not writable" in check.detail
    assert_readable(check)


# --- shared storage -------------------------------------------------------------------------

MOUNTS = """\
/dev/vda1 / ext4 rw,relatime 0 0
server:/export /mnt/shared nfs4 rw,relatime 0 0
/dev/vdb /mnt/shared/scratch ext4 rw 0 0
fs@tcp:/lfs /lustre lustre rw 0 0
tmpfs /run/ram tmpfs rw 0 0
bucket /mnt/bucket fuse.s3fs rw 0 0
odd /mnt/odd oddfs rw 0 0
server:/with\\040space /mnt/my\\040share nfs rw 0 0
"""


@pytest.fixture
def mounts(tmp_path: Path) -> Path:
    path = tmp_path / "mounts"
    path.write_text(MOUNTS)
    return path


@pytest.mark.parametrize(
    ("output", "outcome", "fstype"),
    [
        ("/mnt/shared/runs/a", "pass", "nfs4"),
        ("/mnt/shared/scratch/a", "warn", "ext4"),
        ("/lustre/project/out", "pass", "lustre"),
        ("/run/ram/out", "warn", "tmpfs"),
        ("/srv/out", "warn", "ext4"),
        ("/mnt/bucket/out", "pass", "fuse.s3fs"),
        ("/mnt/odd/out", "pass", "oddfs"),
        ("/mnt/my share/out", "pass", "nfs"),
    ],
)
def test_shared_storage_by_filesystem(mounts: Path, output: str, outcome: str, fstype: str) -> None:
    check = check_shared_storage(Path(output), 2, mounts_file=mounts)
    assert check.outcome == outcome, check
    assert f" on {fstype} " in check.detail
    assert_readable(check)
    if outcome == "warn":
        assert "NFS" in check.fix and "rank 0" in check.fix


def test_shared_storage_node_local_folders_warn(mounts: Path) -> None:
    for folder in ("/tmp/out", "/var/tmp/out", "/dev/shm/out"):
        check = check_shared_storage(Path(folder), 4, mounts_file=mounts)
        assert check.outcome == "warn", folder


def test_shared_storage_single_node_passes(mounts: Path) -> None:
    check = check_shared_storage(Path("/tmp/out"), 1, mounts_file=mounts)
    assert check == Check("shared storage", "pass", "single node: shared storage not needed")


def test_shared_storage_without_a_mount_table_passes(tmp_path: Path) -> None:
    check = check_shared_storage(Path("/srv/out"), 2, mounts_file=tmp_path / "absent")
    assert check.outcome == "pass" and "unknown" in check.detail
