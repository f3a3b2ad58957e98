"""Name the likely cause of a distributed-training failure, and one concrete fix, from log lines.

A failed multi-node run ends in pages of C++ frames and a torchrun ChildFailedError box that
says only "exitcode: 1"; the line that explains it (a timeout towards the master, a port in use,
a missing variable) is somewhere above. The supervisor feeds every line of a run here, and the
scanner keeps the most specific hint seen, so the user reads one cause and one fix instead.

Messages are matched by their text in torch, accelerate and NCCL (see the failure table in the
distributed notes); real captures of most of them live in the tests' fixtures. Pure, stdlib only,
and cheap on ordinary lines: one combined regex rules them out before any rule runs.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["FailureHint", "FailureScanner", "hint_for_line"]


@dataclass(frozen=True)
class FailureHint:
    """One line of cause and one line of fix for a recognised failure message."""

    key: str
    cause: str
    fix: str
    # Higher means more specific, closer to the root cause; consequences (exit codes) are low.
    priority: int


# Captured values are echoed into one-line texts; a runaway value must not swamp them.
_MAX_VALUE_CHARS = 60
_ANSI_RE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")
_LOOPBACK_HOSTS = ("localhost", "::1", "0.0.0.0", "ip6-localhost")

_Build = Callable[[re.Match[str]], tuple[str, str] | None]


@dataclass(frozen=True)
class _Rule:
    key: str
    priority: int
    # A literal that every match contains; the combined prefilter is built from these.
    needle: str
    pattern: re.Pattern[str]
    build: _Build


def _clip(value: str | None) -> str:
    text = " ".join((value or "").split())
    return text if len(text) <= _MAX_VALUE_CHARS else text[: _MAX_VALUE_CHARS - 1] + "…"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _is_loopback(host: str) -> bool:
    return host.startswith("127.") or host.lower() in _LOOPBACK_HOSTS


def _group(match: re.Match[str], name: str) -> str:
    # Optional groups are None when absent; callers treat "" as "not known".
    return _clip(match.groupdict().get(name))


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


# ---------------------------------------------------------------------------------------------
# Builders: each turns a match into (cause, fix). Fix texts name what to change, not what broke.

_UNREACHABLE_FIX = (
    "start the master (RANK 0) first or together; MASTER_ADDR must be the master's address as "
    "seen from this node (not localhost on a worker); open MASTER_PORT in the firewall"
)
_CLIENTS_FIX = (
    "start every node; num_machines / WORLD_SIZE must equal the real node count, and every node "
    "must use this MASTER_ADDR and MASTER_PORT"
)
_TIMEOUT_FIX = (
    "find the first rank's own error higher up; raise ddp_timeout for long saves or "
    "preprocessing (or run `axolotl preprocess` first); rerun with NCCL_DEBUG=INFO"
)
_CONSEQUENCE_FIX = (
    "this is a consequence: the failing rank's own error is higher in this log or in another "
    "node's log; fix that one"
)

# Values read from the whole line once a rule has matched. The port: torch says "port: 29500",
# accelerate "on port `29500`".
_PORT_RE = re.compile(r"\bport:? `?(\d+)")
_OPTYPE_RE = re.compile(r"OpType=(\w+)")
_TIMEOUT_MS_RE = re.compile(r"Timeout\(ms\)=(\d+)")
_OOM_SIZE_RE = re.compile(r"Tried to allocate (\d[\d.]* ?[KMGT]?i?B)")
_OOM_GPU_RE = re.compile(r"\(?GPU (\d+)")


def _unreachable(match: re.Match[str]) -> tuple[str, str]:
    host, port, after = _group(match, "host"), _group(match, "port"), _group(match, "after")
    where = f"{host}:{port}" if host and port else "the master's address"
    cause = f"nothing answered at {where}"
    cause += f" within {after}" if after else ""
    if host and _is_loopback(host):
        # A worker pointed at loopback talks to itself: the commonest multi-node slip.
        cause += " (a loopback address: on a worker it points at the worker itself)"
    return cause, _UNREACHABLE_FIX


def _unreachable_retrying(match: re.Match[str]) -> tuple[str, str]:
    host, port = _group(match, "host"), _group(match, "port")
    return f"could not reach the master at {host}:{port} yet (torch retries until it times out)", (
        _UNREACHABLE_FIX
    )


def _guide_connection_timeout(match: re.Match[str]) -> tuple[str, str]:
    return "this node could not connect to the master before the timeout", (
        "ping MASTER_ADDR from this node, open MASTER_PORT in the firewall, start the master "
        "(RANK 0) first, and use the same axolotl version on all nodes"
    )


def _unresolvable(match: re.Match[str]) -> tuple[str, str]:
    host, port, why = _group(match, "host"), _group(match, "port"), _group(match, "why")
    cause = f"the master address {host} (port {port}) does not resolve on this node"
    cause += f" ({why})" if why else ""
    return cause, (
        "set MASTER_ADDR to the master's IP address, or fix DNS or /etc/hosts on this node; in "
        "Kubernetes wait until the master's Service name resolves"
    )


def _port_in_use(match: re.Match[str]) -> tuple[str, str]:
    found = _PORT_RE.search(match.string)
    port = found.group(1) if found else ""
    which = f"port {port}" if port else "the master port"
    return (
        f"{which} is already in use on this node (a leftover run, another job, or two nodes "
        "both claiming rank 0 here)",
        f"stop the old run (`ss -ltnp | grep :{port or 'PORT'}` shows it) or use another "
        "MASTER_PORT / --main_process_port on every node; only one node may have rank 0",
    )


def _clients_missing(match: re.Match[str]) -> tuple[str, str]:
    joined, total, secs = _group(match, "n"), _group(match, "total"), _group(match, "secs")
    cause = f"only {joined} of {total} nodes/processes reached the master"
    cause += f" within {secs} s" if secs else ""
    return cause, _CLIENTS_FIX


def _rendezvous_timeout(match: re.Match[str]) -> tuple[str, str]:
    return "not all nodes joined the rendezvous before its timeout", _CLIENTS_FIX


def _duplicate_rank(match: re.Match[str]) -> tuple[str, str]:
    waited = _group(match, "ms")
    return (
        f"node ranks are not exactly 0..N-1: two nodes share a machine rank, or one never "
        f"started (waited {waited} ms)",
        "give each node a unique --machine_rank / RANK from 0 to num_machines-1, start all of "
        "them, and check num_machines equals the real node count",
    )


def _world_size_keys(match: re.Match[str]) -> tuple[str, str]:
    waited = _group(match, "ms")
    return (
        f"ranks waited {waited} ms for peers that never registered: WORLD_SIZE or processes "
        "per node differ between nodes",
        "use the same WORLD_SIZE / --num_machines / --num_processes on every node, and check no "
        "rank crashed during start-up",
    )


def _world_size_mesh(match: re.Match[str]) -> tuple[str, str]:
    return (
        "gloo could not connect every rank to every other: WORLD_SIZE differs between nodes, or "
        "a node advertised an address the others cannot reach",
        "use the same WORLD_SIZE on every node; if it already matches, set GLOO_SOCKET_IFNAME to "
        "the interface that reaches the other nodes",
    )


def _guide_rank_mismatch(match: re.Match[str]) -> tuple[str, str]:
    return "the nodes disagree on ranks or world size", (
        "set the same WORLD_SIZE on all nodes and a unique RANK (0..N-1) on each, and start "
        "every node with the same command"
    )


def _machine_rank_missing(match: re.Match[str]) -> tuple[str, str]:
    return "accelerate launch got no usable --machine_rank (missing or not a number)", (
        "pass --machine_rank N on every node: 0 on the master, 1..num_machines-1 on the others "
        "(for example from RANK or SLURM_NODEID)"
    )


def _env_missing(match: re.Match[str]) -> tuple[str, str]:
    var = _group(match, "var") or "a distributed variable"
    return f"{var} is not set, so torch.distributed cannot start", (
        f"launch through accelerate or torchrun, or export {var} on every node (MASTER_ADDR, "
        "MASTER_PORT, RANK and WORLD_SIZE all need to be set)"
    )


def _nccl_watchdog(match: re.Match[str]) -> tuple[str, str]:
    op = _OPTYPE_RE.search(match.string)
    limit = _TIMEOUT_MS_RE.search(match.string)
    what = f"a {op.group(1)} collective" if op else "a collective"
    within = f" within {int(limit.group(1)) // 1000} s" if limit else ""
    return f"{what} did not finish{within}: some rank is stuck, much slower, or dead", _TIMEOUT_FIX


def _guide_collective_timeout(match: re.Match[str]) -> tuple[str, str]:
    return "a collective operation timed out: the ranks are out of sync", (
        "check network bandwidth and that shared storage answers on every node; lower "
        "micro_batch_size or enable gradient_checkpointing if one rank lags"
    )


def _gloo_op_timeout(match: re.Match[str]) -> tuple[str, str]:
    ms, op = _group(match, "ms"), _group(match, "op")
    return (
        f"a gloo {op} between ranks did not finish within {ms} ms: a peer is stuck or dead, or "
        "WORLD_SIZE differs between nodes",
        "look for another rank's error first; check every node uses the same WORLD_SIZE; "
        "raise ddp_timeout if a rank legitimately takes long",
    )


def _nccl_heartbeat(match: re.Match[str]) -> tuple[str, str]:
    secs = _group(match, "secs")
    return f"NCCL's watchdog made no progress for {secs} s: a CUDA or NCCL call hung", (
        "look for a stuck or dead rank and rerun with NCCL_DEBUG=INFO; "
        "TORCH_NCCL_HEARTBEAT_TIMEOUT_SEC raises this limit"
    )


def _nccl_system(match: re.Match[str]) -> tuple[str, str]:
    return (
        "NCCL failed on a system or network call, most often on a network interface the other "
        "nodes cannot reach",
        "set NCCL_SOCKET_IFNAME to the interface that reaches the other nodes (NCCL_IB_DISABLE=1 "
        "without InfiniBand); rerun with NCCL_DEBUG=INFO to see the failing connect",
    )


def _peer_lost(match: re.Match[str]) -> tuple[str, str]:
    peer = _group(match, "peer")
    at = f" ({peer})" if peer else ""
    return f"the connection to another rank{at} broke: that rank crashed, was killed, or hung", (
        "find the rank that failed first (higher in this log or in another node's log) and fix "
        "that; if none did, check the network between the nodes"
    )


def _nccl_other(match: re.Match[str]) -> tuple[str, str] | None:
    what = _group(match, "what")
    if what.startswith("remote process exited"):
        # A lost peer, not a local NCCL problem: the peer_lost rule below names it.
        return None
    what = what or "an error"
    return f"NCCL reported {what}", (
        "rerun with NCCL_DEBUG=INFO: the NCCL WARN lines just before the error name the call "
        "that failed"
    )


def _nccl_no_interface(match: re.Match[str]) -> tuple[str, str]:
    return (
        "NCCL found no usable network interface (NCCL_SOCKET_IFNAME matches none, or only "
        "loopback or docker interfaces exist)",
        "set NCCL_SOCKET_IFNAME to the interface that reaches the other nodes (see "
        "`ip -br addr`; a prefix like eth or ens works, ^lo excludes)",
    )


def _gloo_hostname(match: re.Match[str]) -> tuple[str, str]:
    return (
        "this node's hostname does not resolve to a local address, so gloo fell back to "
        "loopback, which other nodes cannot reach",
        "set GLOO_SOCKET_IFNAME to the interface that reaches the other nodes, or map the "
        "hostname to its real IP in /etc/hosts",
    )


def _gloo_ifname(match: re.Match[str]) -> tuple[str, str]:
    name = _group(match, "ifname")
    return f"GLOO_SOCKET_IFNAME names {name}, which has no address on this node", (
        "set GLOO_SOCKET_IFNAME to an existing interface that reaches the other nodes "
        "(see `ip -br addr`), or unset it"
    )


def _cuda_oom(match: re.Match[str]) -> tuple[str, str]:
    size = _OOM_SIZE_RE.search(match.string)
    gpu = _OOM_GPU_RE.search(match.string)
    cause = f"GPU {gpu.group(1)} ran out of memory" if gpu else "a GPU ran out of memory"
    cause += f" (tried to allocate {size.group(1)})" if size else ""
    return cause, (
        "lower micro_batch_size or sequence_len, enable gradient_checkpointing, or train an "
        "adapter; PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True eases fragmentation"
    )


def _killed(match: re.Match[str]) -> tuple[str, str]:
    return "a training process was killed (SIGKILL, exit -9), usually by the kernel's OOM killer", (
        "check `dmesg` or the job's memory limit for an out-of-memory kill; lower "
        "micro_batch_size or dataloader workers, or give the job more host RAM"
    )


def _exit_code(match: re.Match[str]) -> tuple[str, str] | None:
    code = int(match.group("code"))
    if code == 0:
        return None
    if code < 0:
        name = _signal_name(-code)
        fix = _CONSEQUENCE_FIX
        if name == "SIGABRT":
            # torch aborts at exit when the process group was never destroyed: noise, not cause.
            fix = (
                "look for the rank's own error above; SIGABRT right at the end, after "
                "'terminate called', means destroy_process_group() was not called"
            )
        return f"a training process was killed by {name} (exit {code})", fix
    return f"a training process exited with code {code}", _CONSEQUENCE_FIX


def _launcher_signal(match: re.Match[str]) -> tuple[str, str]:
    name = _signal_name(int(match.group("sig")))
    return f"the launcher itself received {name} and stopped the training processes", (
        "check whether the scheduler ended the job (time limit, preemption, scancel) or "
        "someone pressed Ctrl-C"
    )


def _child_failed(match: re.Match[str]) -> tuple[str, str]:
    return "a training process failed and torchrun stopped the others", _CONSEQUENCE_FIX


# ---------------------------------------------------------------------------------------------
# Rules, tried from the highest priority down; the first match on a line wins. Needles start
# with a rare character (capital, punctuation) where they can: the prefilter then skips most
# positions of an ordinary line at C speed.

_HOST_PORT = r"\((?P<host>[^,()\s]+), (?P<port>\d+)\)"

# (key, priority, needle, regex, build)
_TABLE: tuple[tuple[str, int, str, str, _Build], ...] = (
    # Root causes that name the wrong setting outright.
    ("master_unresolvable", 90, ") cannot be retrieved",
     r"network addresses of " + _HOST_PORT + r" cannot be retrieved"
     r"(?: \(gai error: -?\d+ - (?P<why>[^)]*)\))?", _unresolvable),
    ("machine_rank_missing", 90, "(args.machine_rank)", r"int\(args\.machine_rank\)",
     _machine_rank_missing),
    ("env_missing", 90, ", but not set",
     r"environment variable (?P<var>\w+) expected, but not set", _env_missing),
    ("env_missing", 90, "` env was not set", r"`(?P<var>\w+)` env was not set", _env_missing),
    ("gloo_interface", 90, "Unable to find address for",
     r"Unable to find address for: (?P<ifname>\S+)", _gloo_ifname),
    ("nccl_no_interface", 85, "Bootstrap : no socket interface found",
     r"Bootstrap : no socket interface found", _nccl_no_interface),
    ("nccl_no_interface", 85, "NET/Socket : No usable listening interface found",
     r"NET/Socket : No usable listening interface found", _nccl_no_interface),
    ("port_in_use", 85, "EADDRINUSE", r"EADDRINUSE", _port_in_use),
    ("port_in_use", 85, "Address already in use", r"Address already in use", _port_in_use),
    ("port_in_use", 85, "`, but another process is utilizing it",
     r"port `\d+`, but another process is utilizing it", _port_in_use),
    ("duplicate_node_rank", 80, "/torchelastic/",
     r"wait timeout after (?P<ms>\d+)ms, keys: \S*/torchelastic/(?:role_info|assigned_ranks)/",
     _duplicate_rank),
    ("world_size_mismatch", 80, "_pg/", r"wait timeout after (?P<ms>\d+)ms, keys: \S*default_pg/",
     _world_size_keys),
    ("cuda_oom", 80, "CUDA out of memory", r"CUDA out of memory", _cuda_oom),
    ("cuda_oom", 80, "CUDA error: out of memory", r"CUDA error: out of memory", _cuda_oom),
    ("cuda_oom", 80, "OutOfMemoryError", r"\bOutOfMemoryError\b", _cuda_oom),
    # A warning that explains a later gloo connect failure.
    ("gloo_interface", 75, "Unable to resolve hostname",
     r"Unable to resolve hostname to a \(local\) address", _gloo_hostname),
    # Timeouts towards the master: the cause is the master's side or the network.
    ("master_unreachable", 70, "The client socket has timed out after",
     r"The client socket has timed out after (?P<after>\S+) while trying to connect to "
     + _HOST_PORT, _unreachable),
    ("master_unreachable", 70, "The client socket has failed to connect",
     r"The client socket has failed to connect to any network address (?:of|on) " + _HOST_PORT,
     _unreachable),
    ("clients_missing", 70, "Timed out after ",
     r"Timed out after (?P<secs>\d+) seconds waiting for clients\. "
     r"(?P<n>\d+)/(?P<total>\d+) clients joined", _clients_missing),
    ("master_unreachable", 65, "Error: Connection timeout", r"Error: Connection timeout\b",
     _guide_connection_timeout),
    ("nccl_system_error", 60, "NCCL error in: ", r"NCCL error in: .*?unhandled system error",
     _nccl_system),
    ("nccl_system_error", 60, "SystemError: System call", r"ncclSystemError: System call",
     _nccl_system),
    ("world_size_mismatch", 60, "Gloo connectFullMesh failed", r"Gloo connectFullMesh failed",
     _world_size_mesh),
    ("world_size_mismatch", 60, "Error: Rank mismatch", r"Error: Rank mismatch\b",
     _guide_rank_mismatch),
    ("clients_missing", 55, "RendezvousTimeoutError", r"\bRendezvousTimeoutError\b",
     _rendezvous_timeout),
    # Collectives that hang: often the echo of another rank's failure, so below the above.
    ("nccl_timeout", 50, "Watchdog caught collective operation timeout",
     r"Watchdog caught collective operation timeout", _nccl_watchdog),
    ("nccl_timeout", 50, "Collective operation timeout", r"Error: Collective operation timeout",
     _guide_collective_timeout),
    ("nccl_timeout", 50, "Timed out waiting ",
     r"Timed out waiting (?P<ms>\d+)ms for (?P<op>send|recv) operation to complete",
     _gloo_op_timeout),
    ("nccl_timeout", 45, "ProcessGroupNCCL's watchdog got stuck",
     r"ProcessGroupNCCL's watchdog got stuck for (?P<secs>\d+) seconds", _nccl_heartbeat),
    ("nccl_system_error", 45, "NCCL error in: ", r"NCCL error in: [^,]*, (?P<what>[^(,]+)",
     _nccl_other),
    # Logged on every retry, also in runs whose master simply starts a little later.
    ("master_unreachable", 40, "TCP client failed to connect",
     r"TCP client failed to connect/validate to host (?P<host>\S+):(?P<port>\d+)",
     _unreachable_retrying),
    # Consequences: how a process ended, not why; anything above explains more.
    ("killed_oom", 20, "exitcode", r"\bexitcode\s*:\s*-9\b", _killed),
    ("killed_oom", 20, "Signal 9 (SIGKILL)", r"Signal 9 \(SIGKILL\) received by PID", _killed),
    # A peer vanished: says where to look (another rank or node), not what went wrong there.
    ("peer_lost", 15, "NCCL error in: ",
     r"NCCL error in: .*?remote process exited or there was a network error", _peer_lost),
    ("peer_lost", 15, "RemoteError: A call failed", r"ncclRemoteError: A call failed",
     _peer_lost),
    ("peer_lost", 15, "Connection closed by remote peer",
     r"Connection closed by remote peer (?P<peer>[^\s,]+)", _peer_lost),
    ("peer_lost", 15, "Connection closed by peer",
     r"Connection closed by peer (?P<peer>\[[^\]]*\]:\d+|\S+)", _peer_lost),
    ("peer_lost", 15, "Read error [",
     r"Read error (?P<peer>\S+): Connection reset by peer", _peer_lost),
    ("child_failed", 12, "SignalException",
     r"SignalException: Process \d+ got signal: (?P<sig>\d+)", _launcher_signal),
    ("child_failed", 11, "exitcode", r"\bexitcode\s*:\s*(?P<code>-?\d+)", _exit_code),
    ("child_failed", 10, "ChildFailedError", r"\bChildFailedError\b", _child_failed),
)  # fmt: skip

# sorted() is stable: rules of equal priority keep the table's order.
_RULES: tuple[_Rule, ...] = tuple(
    sorted(
        (
            _Rule(key, prio, needle, re.compile(rx), build)
            for key, prio, needle, rx, build in _TABLE
        ),
        key=lambda rule: -rule.priority,
    )
)

# Ordinary lines (nearly all of a log) fail this one search and cost nothing more.
_PREFILTER = re.compile("|".join(re.escape(n) for n in dict.fromkeys(r.needle for r in _RULES)))


def hint_for_line(text: str) -> FailureHint | None:
    """The most specific hint for one log line, or None for an ordinary line."""
    if "\x1b" in text:
        text = _ANSI_RE.sub("", text)
    if _PREFILTER.search(text) is None:
        return None
    for rule in _RULES:
        if rule.needle not in text:
            continue
        match = rule.pattern.search(text)
        if match is None:
            continue
        built = rule.build(match)
        if built is None:
            continue
        cause, fix = built
        return FailureHint(rule.key, _one_line(cause), _one_line(fix), rule.priority)
    return None


class FailureScanner:
    """Feed every log line of a run; keeps the best hint seen (highest priority, first seen on
    ties), since the root cause usually comes before the messages it provokes."""

    __slots__ = ("_best",)

    def __init__(self) -> None:
        self._best: FailureHint | None = None

    def feed(self, text: str) -> FailureHint | None:
        """The hint for this line, if any; the best one so far is kept in `best`."""
        hint = hint_for_line(text)
        if hint is not None and (self._best is None or hint.priority > self._best.priority):
            self._best = hint
        return hint

    @property
    def best(self) -> FailureHint | None:
        return self._best
