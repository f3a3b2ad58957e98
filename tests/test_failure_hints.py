"""Failure hints: real captured failure logs, exact message texts, priorities and prefixes.

The fixtures under fixtures/distributed/ were captured from real torch, torchrun and accelerate
runs on the loopback address (fixtures/distributed/capture.py makes them again). Messages that
need GPUs or several hosts (NCCL, CUDA) are checked on their exact text from the failure table
of the distributed notes, or on the format strings in torch's source.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vlm_tui.core import failure_hints
from vlm_tui.core.failure_hints import FailureHint, FailureScanner, hint_for_line

FIXTURES = Path(__file__).parent / "fixtures"
DISTRIBUTED = FIXTURES / "distributed"

# Every key the module promises; each has at least one case below.
KEYS = {
    "master_unreachable",
    "port_in_use",
    "clients_missing",
    "duplicate_node_rank",
    "world_size_mismatch",
    "master_unresolvable",
    "nccl_timeout",
    "nccl_system_error",
    "nccl_no_interface",
    "gloo_interface",
    "cuda_oom",
    "child_failed",
    "killed_oom",
    "machine_rank_missing",
    "env_missing",
    "peer_lost",
}

# (line, key, texts the cause must contain)
CASES: list[tuple[str, str, tuple[str, ...]]] = [
    # master_unreachable: captured, the facts table's row 1, the guide, torch's older text.
    (
        "torch.distributed.DistNetworkError: The client socket has timed out after 15000ms "
        "while trying to connect to (127.0.0.1, 29630).",
        "master_unreachable",
        ("127.0.0.1:29630", "15000ms", "loopback"),
    ),
    (
        "[E1124 14:32:03.404713416 socket.cpp:1028] [c10d] The client socket has timed out after "
        "900000ms while trying to connect to (master-0.cluster.invalid, 29500).",
        "master_unreachable",
        ("master-0.cluster.invalid:29500", "900000ms"),
    ),
    ("RuntimeError: Connection timeout", "master_unreachable", ("master",)),
    (
        "The client socket has failed to connect to any network address of (master-0, 29500).",
        "master_unreachable",
        ("master-0:29500",),
    ),
    (
        "[W1124 14:32:03.423532297 TCPStore.cpp:340] [c10d] TCP client failed to connect/validate "
        "to host master-0:29500 - retrying (try=0, timeout=3000ms, delay=2425ms): The server "
        "socket on master-0:29500 is not yet listening",
        "master_unreachable",
        ("master-0:29500", "retries"),
    ),
    # master_unresolvable: row 2, as captured (IPv6 lookup first).
    (
        "[W1124 14:32:26.527703251 socket.cpp:764] [c10d] The IPv6 network addresses of "
        "(no-such-host.invalid, 29730) cannot be retrieved (gai error: -2 - Name or service not "
        "known).",
        "master_unresolvable",
        ("no-such-host.invalid", "29730", "Name or service not known"),
    ),
    (
        "The network addresses of (master-0, 29500) cannot be retrieved (gai error: -3 - "
        "Temporary failure in name resolution).",
        "master_unresolvable",
        ("master-0", "Temporary failure"),
    ),
    # port_in_use: rows 3 and 4, plus the errno spellings.
    (
        "torch.distributed.DistNetworkError: The server socket has failed to listen on any local "
        "network address. port: 29642, useIpv6: false, code: -98, name: EADDRINUSE, message: "
        "address already in use",
        "port_in_use",
        ("29642",),
    ),
    (
        "ConnectionError: Tried to launch distributed communication on port `29501`, but another "
        "process is utilizing it. Please specify a different port (such as using the "
        "`--main_process_port` flag or specifying a different `main_process_port` in your config "
        "file) and rerun your script.",
        "port_in_use",
        ("29501",),
    ),
    ("OSError: [Errno 98] Address already in use", "port_in_use", ("in use",)),
    # clients_missing: row 5 and row 8.
    (
        "torch.distributed.DistStoreError: Timed out after 11 seconds waiting for clients. 1/2 "
        "clients joined.",
        "clients_missing",
        ("1 of 2", "11 s"),
    ),
    ("torch.distributed.elastic.rendezvous.api.RendezvousTimeoutError", "clients_missing", ()),
    # duplicate_node_rank: row 6, both sides.
    (
        "torch.distributed.DistStoreError: wait timeout after 15000ms, keys: "
        "/none/torchelastic/role_info/0, /none/torchelastic/role_info/1, "
        "/none/torchelastic/role_info/2",
        "duplicate_node_rank",
        ("15000 ms",),
    ),
    (
        "torch.distributed.DistStoreError: wait timeout after 15000ms, keys: "
        "/none/torchelastic/assigned_ranks/1",
        "duplicate_node_rank",
        ("machine rank",),
    ),
    # world_size_mismatch: row 7, both sides, and the guide's symptom.
    (
        "torch.distributed.DistStoreError: wait timeout after 10000ms, keys: "
        "/default_pg/0//cpu//0/2",
        "world_size_mismatch",
        ("10000 ms", "WORLD_SIZE"),
    ),
    (
        "RuntimeError: Gloo connectFullMesh failed with [.../gloo/transport/tcp/pair.h:311] "
        "Connect timeout [none]",
        "world_size_mismatch",
        ("WORLD_SIZE",),
    ),
    ("RuntimeError: Rank mismatch", "world_size_mismatch", ("world size",)),
    # env_missing: rows 9 and 10.
    (
        "ValueError: Error initializing torch.distributed using env:// rendezvous: environment "
        "variable RANK expected, but not set",
        "env_missing",
        ("RANK",),
    ),
    (
        "ValueError: Tried to launch on distributed with multinode, but `MASTER_ADDR` env was not "
        "set, please try exporting rank 0's hostname as `MASTER_ADDR`",
        "env_missing",
        ("MASTER_ADDR",),
    ),
    # machine_rank_missing: row 18 (the traceback's source line names it).
    ("    args.node_rank = int(args.machine_rank)", "machine_rank_missing", ("--machine_rank",)),
    # nccl_timeout: row 11, the guide, gloo's own collective timeout (captured), row 12.
    (
        "[rank0]:[E1218 20:27:21.426415540 ProcessGroupNCCL.cpp:629] [Rank 0] Watchdog caught "
        "collective operation timeout: WorkNCCL(SeqNum=1, OpType=BROADCAST, NumelIn=131072000, "
        "NumelOut=131072000, Timeout(ms)=600000) ran for 600081 milliseconds before timing out.",
        "nccl_timeout",
        ("BROADCAST", "600 s"),
    ),
    ("RuntimeError: Collective operation timeout", "nccl_timeout", ("out of sync",)),
    (
        "[rank0]: RuntimeError: [/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/"
        "unbound_buffer.cc:78] Timed out waiting 5000ms for recv operation to complete",
        "nccl_timeout",
        ("recv", "5000 ms"),
    ),
    (
        "[rank0]:[E1124 11:14:02.000000 ProcessGroupNCCL.cpp:1400] [PG 0 Rank 0] "
        "ProcessGroupNCCL's watchdog got stuck for 480 seconds without making progress in "
        "monitoring enqueued collectives.",
        "nccl_timeout",
        ("480 s",),
    ),
    # nccl_system_error: row 13.
    (
        "torch.distributed.DistBackendError: NCCL error in: ../torch/csrc/distributed/c10d/"
        "ProcessGroupNCCL.cpp:1333, unhandled system error (run with NCCL_DEBUG=INFO for "
        "details), NCCL version 2.18.6",
        "nccl_system_error",
        ("network interface",),
    ),
    (
        "ncclSystemError: System call (e.g. socket, malloc) or external library call failed or "
        "device error. ",
        "nccl_system_error",
        ("system",),
    ),
    (
        "torch.distributed.DistBackendError: NCCL error in: ../torch/csrc/distributed/c10d/"
        "ProcessGroupNCCL.cpp:1691, unhandled cuda error (run with NCCL_DEBUG=INFO for details), "
        "NCCL version 2.21.5",
        "nccl_system_error",
        ("unhandled cuda error",),
    ),
    # nccl_no_interface: row 14, as NCCL prints its WARN lines.
    (
        "node0:2281:2281 [0] bootstrap.cc:66 NCCL WARN Bootstrap : no socket interface found",
        "nccl_no_interface",
        ("NCCL_SOCKET_IFNAME",),
    ),
    (
        "node0:2281:2290 [0] transport/net_socket.cc:48 NCCL WARN NET/Socket : No usable "
        "listening interface found",
        "nccl_no_interface",
        ("interface",),
    ),
    # peer_lost: NCCL's remote error (row 13's list) and gloo's, as captured.
    (
        "torch.distributed.DistBackendError: NCCL error in: ../torch/csrc/distributed/c10d/"
        "ProcessGroupNCCL.cpp:1970, remote process exited or there was a network error, NCCL "
        "version 2.19.3",
        "peer_lost",
        ("another rank",),
    ),
    (
        "ncclRemoteError: A call failed possibly due to a network error or a remote process "
        "exiting prematurely.",
        "peer_lost",
        ("another rank",),
    ),
    (
        "node0:2281:2290 [0] misc/socket.cc:50 NCCL WARN socketProgress: Connection closed by "
        "remote peer node1<38522>",
        "peer_lost",
        ("node1<38522>",),
    ),
    (
        "[rank1]: RuntimeError: [/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/"
        "pair.cc:553] Connection closed by peer [127.0.0.1]:60620. This is typically caused by a "
        "remote worker crashing.",
        "peer_lost",
        ("[127.0.0.1]:60620",),
    ),
    (
        "[rank2]: RuntimeError: [/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/"
        "pair.cc:537] Read error [127.0.0.1]:29106: Connection reset by peer. This is typically "
        "caused by a remote worker hanging",
        "peer_lost",
        ("[127.0.0.1]:29106",),
    ),
    # gloo_interface: row 15 (captured) and a GLOO_SOCKET_IFNAME naming nothing (captured).
    (
        "[W1124 14:35:35.351010405 ProcessGroupGloo.cpp:524] Warning: Unable to resolve hostname "
        "to a (local) address. Using the loopback address as fallback. Manually set the network "
        "interface to bind to with GLOO_SOCKET_IFNAME. (function operator())",
        "gloo_interface",
        ("hostname",),
    ),
    (
        "RuntimeError: [enforce fail at /__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/"
        "device.cc:84] ifa != nullptr. Unable to find address for: nosuchif0",
        "gloo_interface",
        ("nosuchif0",),
    ),
    # cuda_oom: torch's current and older allocator texts, and the raw CUDA error.
    (
        "[rank1]: torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 1 "
        "has a total capacity of 79.19 GiB of which 1.06 GiB is free. Of the allocated memory "
        "76.50 GiB is allocated by PyTorch, and 1.10 GiB is reserved by PyTorch but unallocated.",
        "cuda_oom",
        ("GPU 1", "2.00 GiB"),
    ),
    (
        "RuntimeError: CUDA out of memory. Tried to allocate 20.00 MiB (GPU 0; 7.79 GiB total "
        "capacity; 5.59 GiB already allocated; 10.06 MiB free; 5.64 GiB reserved in total by "
        "PyTorch)",
        "cuda_oom",
        ("GPU 0", "20.00 MiB"),
    ),
    ("RuntimeError: CUDA error: out of memory", "cuda_oom", ("out of memory",)),
    # killed_oom: row 16's -9, in the box, the agent's line and the box's traceback field.
    ("  exitcode  : -9 (pid: 16563)  (SIGKILL)", "killed_oom", ("SIGKILL",)),
    (
        "E1124 14:35:12.396000 15178 torch/distributed/elastic/multiprocessing/api.py:1002] "
        "failed (exitcode: -9) local_rank: 0 (pid: 15200) of binary: /venv/bin/python3",
        "killed_oom",
        ("OOM",),
    ),
    ("  traceback : Signal 9 (SIGKILL) received by PID 16563", "killed_oom", ("OOM",)),
    # child_failed: row 16 otherwise.
    ("torch.distributed.elastic.multiprocessing.errors.ChildFailedError: ", "child_failed", ()),
    ("  exitcode  : 1 (pid: 5003)", "child_failed", ("code 1",)),
    ("  exitcode  : -6 (pid: 15222)  (SIGABRT)", "child_failed", ("SIGABRT",)),
    (
        "torch.distributed.elastic.multiprocessing.api.SignalException: Process 4101 got "
        "signal: 15",
        "child_failed",
        ("SIGTERM",),
    ),
]

# (fixture file, key of the scanner's best hint)
REAL_LOGS = {
    "master_unreachable.log": "master_unreachable",
    "master_unreachable_then_child_failed.log": "master_unreachable",
    "master_unresolvable.log": "master_unresolvable",
    "port_in_use.log": "port_in_use",
    "port_in_use_accelerate.log": "port_in_use",
    "clients_missing.log": "clients_missing",
    "clients_missing_rendezvous.log": "clients_missing",
    "duplicate_node_rank.log": "duplicate_node_rank",
    "duplicate_node_rank_worker.log": "duplicate_node_rank",
    "world_size_mismatch.log": "world_size_mismatch",
    "world_size_mismatch_mesh.log": "world_size_mismatch",
    "collective_timeout_gloo.log": "nccl_timeout",
    "peer_lost_gloo.log": "peer_lost",
    "env_missing.log": "env_missing",
    "machine_rank_missing.log": "machine_rank_missing",
    "gloo_interface.log": "gloo_interface",
    "gloo_interface_ifname.log": "gloo_interface",
    "killed_oom.log": "killed_oom",
    "child_failed.log": "child_failed",
    "child_failed_signal.log": "child_failed",
}


def scan(lines: list[str]) -> FailureScanner:
    scanner = FailureScanner()
    for line in lines:
        scanner.feed(line)
    return scanner


def read_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


@pytest.mark.parametrize(("line", "key", "mentions"), CASES, ids=[c[1] for c in CASES])
def test_message_gives_its_hint(line: str, key: str, mentions: tuple[str, ...]) -> None:
    hint = hint_for_line(line)
    assert hint is not None, line
    assert hint.key == key
    for text in mentions:
        assert text in hint.cause
    assert hint.fix


def test_every_key_has_a_case() -> None:
    assert {key for _, key, _ in CASES} == KEYS
    assert {rule.key for rule in failure_hints._RULES} == KEYS


def test_every_rule_is_exercised_and_its_needle_is_in_what_it_matches() -> None:
    # The prefilter only lets through lines holding some rule's needle; a needle missing from
    # what its regex matches would silently disable that rule.
    for rule in failure_hints._RULES:
        hits = [m for line, _, _ in CASES if (m := rule.pattern.search(line))]
        assert hits, f"no case for {rule.key}: {rule.pattern.pattern}"
        assert all(rule.needle in m.string for m in hits), rule.needle


@pytest.mark.parametrize(("line", "key", "mentions"), CASES, ids=[c[1] for c in CASES])
def test_cause_and_fix_are_single_short_lines(line: str, key: str, mentions: object) -> None:
    hint = hint_for_line(line)
    assert hint is not None
    for text in (hint.cause, hint.fix):
        assert text and "\n" not in text and "\r" not in text
        assert len(text) <= 200, text


def test_captured_values_are_clipped() -> None:
    host = "h" * 500
    line = (
        f"The client socket has timed out after 3000ms while trying to connect to ({host}, 29500)."
    )
    hint = hint_for_line(line)
    assert hint is not None and hint.key == "master_unreachable"
    assert len(hint.cause) <= 200


def test_fixes_name_concrete_settings() -> None:
    # The first case of each key is its main message.
    fixes: dict[str, str] = {}
    for line, _, _ in CASES:
        hint = hint_for_line(line)
        assert hint is not None
        fixes.setdefault(hint.key, hint.fix)
    assert "MASTER_ADDR" in fixes["master_unreachable"]
    assert "MASTER_PORT" in fixes["master_unreachable"]
    assert "--machine_rank" in fixes["duplicate_node_rank"]
    assert "WORLD_SIZE" in fixes["world_size_mismatch"]
    assert "NCCL_SOCKET_IFNAME" in fixes["nccl_no_interface"]
    assert "GLOO_SOCKET_IFNAME" in fixes["gloo_interface"]
    assert "ddp_timeout" in fixes["nccl_timeout"]
    assert "dmesg" in fixes["killed_oom"]
    assert "micro_batch_size" in fixes["cuda_oom"]


@pytest.mark.parametrize("name", sorted(REAL_LOGS))
def test_real_log_gives_expected_best_hint(name: str) -> None:
    best = scan(read_lines(DISTRIBUTED / name)).best
    assert best is not None, name
    assert best.key == REAL_LOGS[name]


def test_every_captured_log_is_checked() -> None:
    assert {p.name for p in DISTRIBUTED.glob("*.log")} == set(REAL_LOGS)


def test_root_cause_beats_the_child_failed_box_after_it() -> None:
    lines = read_lines(DISTRIBUTED / "master_unreachable_then_child_failed.log")
    hints = [h for h in map(hint_for_line, lines) if h is not None]
    keys = [h.key for h in hints]
    # The real log holds both the cause and torchrun's box, in that order.
    assert "master_unreachable" in keys and "child_failed" in keys
    assert keys.index("master_unreachable") < len(keys) - 1 - keys[::-1].index("child_failed")
    best = scan(lines).best
    assert best is not None and best.key == "master_unreachable"
    assert "127.0.0.1:" in best.cause


def test_consequences_rank_below_every_root_cause() -> None:
    hints = [h for h in (hint_for_line(c[0]) for c in CASES) if h is not None]
    consequence = {"child_failed", "killed_oom", "peer_lost"}
    lowest_cause = min(h.priority for h in hints if h.key not in consequence)
    assert all(h.priority < lowest_cause for h in hints if h.key in consequence)
    # An exit code is the least telling of all; a SIGKILL at least hints at memory.
    child = max(h.priority for h in hints if h.key == "child_failed")
    assert child < min(h.priority for h in hints if h.key == "killed_oom")


def test_final_timeout_outranks_the_retry_warning() -> None:
    retry = hint_for_line(
        "[W1124 14:32:03.423532297 TCPStore.cpp:340] [c10d] TCP client failed to connect/validate "
        "to host master-0:29500 - retrying (try=0, timeout=3000ms, delay=2425ms): boom"
    )
    final = hint_for_line(
        "torch.distributed.DistNetworkError: The client socket has timed out after 3000ms while "
        "trying to connect to (master-0, 29500)."
    )
    assert retry is not None and final is not None
    assert retry.priority < final.priority


def test_unresolvable_master_outranks_the_timeout_it_causes() -> None:
    best = scan(read_lines(DISTRIBUTED / "master_unresolvable.log")).best
    assert best is not None and best.key == "master_unresolvable"
    assert "no-such-host.invalid" in best.cause


def test_prefixes_and_ansi_codes_do_not_hide_a_message() -> None:
    plain = (
        "torch.distributed.DistStoreError: Timed out after 11 seconds waiting for clients. "
        "1/2 clients joined."
    )
    expected = hint_for_line(plain)
    assert expected is not None
    for decorated in (
        f"[rank1]: {plain}",
        f"[rank1]:[W1124 11:14:02.123 socket.cpp:764] [c10d] {plain}",
        f"\x1b[31m[rank1]: {plain}\x1b[0m",
        "\x1b[1;31mtorch.distributed.DistStoreError\x1b[0m: Timed out after 11 seconds waiting "
        "for clients. \x1b[33m1/2\x1b[0m clients joined.",
    ):
        assert hint_for_line(decorated) == expected, decorated


def test_scanner_keeps_the_first_of_equal_priority() -> None:
    scanner = FailureScanner()
    first = scanner.feed(
        "The client socket has timed out after 3000ms while trying to connect to (master-0, 1)."
    )
    scanner.feed(
        "The client socket has timed out after 3000ms while trying to connect to (master-0, 2)."
    )
    assert first is not None and scanner.best == first
    assert "master-0:1 " in scanner.best.cause


def test_scanner_upgrades_to_a_more_specific_hint_and_never_down() -> None:
    scanner = FailureScanner()
    assert scanner.best is None
    low = scanner.feed("  exitcode  : 1 (pid: 5003)")
    assert low is not None and scanner.best == low
    high = scanner.feed("ValueError: ... environment variable WORLD_SIZE expected, but not set")
    assert high is not None and scanner.best == high
    again = scanner.feed("torch.distributed.elastic.multiprocessing.errors.ChildFailedError: ")
    assert again is not None and again.key == "child_failed"
    assert scanner.best == high
    assert scanner.feed("an ordinary line") is None
    assert scanner.best == high


def test_ordinary_training_log_gives_no_hint() -> None:
    lines = read_lines(FIXTURES / "axolotl_demo_run.log")
    assert len(lines) > 100
    assert all(hint_for_line(line) is None for line in lines)
    assert scan(lines).best is None


def test_ordinary_lines_stop_at_the_prefilter() -> None:
    # The cheap path: not one rule regex runs for a healthy run's lines.
    lines = read_lines(FIXTURES / "axolotl_demo_run.log")
    lines += read_lines(FIXTURES / "handmade_training.log")
    assert not [line for line in lines if failure_hints._PREFILTER.search(line)]


@pytest.mark.parametrize(
    "line",
    [
        "",
        "timeout=1800 rank=0 world_size=4 error_rate=0.1",
        "[2026-11-24 11:14:03,823] [INFO] [axolotl.loaders.model] [RANK:1] Loading model",
        "{'loss': 1.234, 'grad_norm': 0.5, 'learning_rate': 2e-05, 'epoch': 0.1}",
        "NCCL INFO Bootstrap : Using eth0:192.0.2.10<0>",
        "  exitcode  : 0 (pid: 1)",
        "ConnectionResetError(104, 'Connection reset by peer')",
        "Timed out after 10 seconds downloading the file",
    ],
)
def test_lines_that_only_look_alike_give_no_hint(line: str) -> None:
    assert hint_for_line(line) is None


def test_handmade_failure_points_at_the_failed_child() -> None:
    best = scan(read_lines(FIXTURES / "handmade_failure.log")).best
    assert best is not None and best.key == "child_failed"
    assert "code 1" in best.cause


@given(st.text(max_size=300))
def test_any_text_gives_a_well_formed_hint_or_none(text: str) -> None:
    hint = hint_for_line(text)
    assert hint is None or (isinstance(hint, FailureHint) and hint.key in KEYS)
    if hint is not None:
        assert "\n" not in hint.cause and "\n" not in hint.fix
