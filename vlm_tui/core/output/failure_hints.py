"""Name the likely cause of a failed training, and one concrete fix, from log lines.

A failed run ends in pages of C++ frames and often a torchrun ChildFailedError box that says
only "exitcode: 1"; the line that explains it (a timeout towards the master, a port in use, out
of memory, a full disk, a missing dataset, model or package) is somewhere above. The supervisor
feeds every line of a run here, and the scanner keeps the most specific hint seen, so the user
reads one cause and one fix instead.

Messages are matched by their text in torch, accelerate, NCCL, transformers, datasets, axolotl
and the shell (the distributed ones are in the failure table of the distributed notes); real
captures of most of them live in the tests' fixtures. Pure, stdlib only, and cheap on ordinary
lines: one combined regex rules them out before any rule runs.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["FailureHint", "FailureScanner", "hint_for_exit_code", "hint_for_line"]


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
_URL_USER_RE = re.compile(r"://[^/@\s]*@")
_URL_QUERY_RE = re.compile(r"(?<=\S)[?#]\S*")

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


def _scrubbed(value: str | None) -> str:
    """A captured path or id, clipped, without a URL's credentials or query (signed URLs)."""
    text = _URL_USER_RE.sub("://", value or "")
    return _clip(_URL_QUERY_RE.sub("", text))


def _size(count: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= scale:
            return f"{count / scale:.1f} {unit}"
    return f"{count} bytes"


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
        "lower micro_batch_size, sequence_len or image_size, enable gradient_checkpointing, or "
        "train an adapter; PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True eases fragmentation"
    )


_KILLED = (
    "a training process was killed (SIGKILL, exit -9), usually by the kernel's OOM killer",
    "check `dmesg` or the job's memory limit for an out-of-memory kill; lower micro_batch_size or "
    "dataloader workers, or give the job more host RAM",
)


def _killed(match: re.Match[str]) -> tuple[str, str]:
    return _KILLED


def _worker_killed(match: re.Match[str]) -> tuple[str, str]:
    return "a data loader worker was killed (SIGKILL), usually by the kernel's OOM killer", (
        "lower dataloader_num_workers or micro_batch_size, or give the job more host RAM; "
        "`dmesg` shows out-of-memory kills"
    )


_HOST_OOM_FIX = (
    "lower micro_batch_size, sequence_len, image_size or dataloader_num_workers, or give the job "
    "more host RAM (see `free -g` for what else uses it)"
)


def _host_oom(match: re.Match[str]) -> tuple[str, str]:
    found = match.groupdict()
    size = _size(int(found["bytes"])) if found.get("bytes") else _group(match, "size")
    cause = "the host ran out of RAM"
    cause += f" (tried to allocate {size})" if size else ""
    return cause, _HOST_OOM_FIX


def _shm_full(match: re.Match[str]) -> tuple[str, str]:
    return (
        "shared memory (/dev/shm) is full or too small: data loader workers hand batches over "
        "through it",
        "give the container more shared memory (docker --shm-size=16g; a Memory emptyDir on "
        "/dev/shm in Kubernetes) or set dataloader_num_workers: 0",
    )


_DISK_FIX = (
    "free space on the disk of output_dir and the Hugging Face cache (`df -h`), lower "
    "save_total_limit, or move output_dir / HF_HOME to a bigger disk"
)


def _disk_full(match: re.Match[str]) -> tuple[str, str]:
    path = _scrubbed(match.groupdict().get("path"))
    return "the disk is full (No space left on device)" + (f" writing {path}" if path else ""), (
        _DISK_FIX
    )


def _disk_quota(match: re.Match[str]) -> tuple[str, str]:
    return "the disk quota is used up (Disk quota exceeded)", (
        "free space under your quota (`quota -s` or your cluster's quota tool), lower "
        "save_total_limit, or move output_dir / HF_HOME to a filesystem with room"
    )


def _disk_needed(match: re.Match[str]) -> tuple[str, str]:
    needed = _group(match, "needed")
    return f"not enough free disk space to prepare the dataset (needs {needed})", _DISK_FIX


def _download_space(match: re.Match[str]) -> tuple[str, str]:
    return "not enough free disk space to download the model or dataset files", (
        "free space in the Hugging Face cache's disk (`df -h`), or point HF_HOME at a bigger disk"
    )


def _torch_write_failed(match: re.Match[str]) -> tuple[str, str]:
    # torch 2.13 says only this when a save meets a full disk: captured on a full tmpfs.
    cause = "torch could not finish writing a file (a checkpoint), most likely a full disk or quota"
    return cause, _DISK_FIX


# Import names whose pip distribution is named otherwise; "_" and "-" are the same to pip.
_PIP_NAMES = {
    "PIL": "pillow",
    "attr": "attrs",
    "bs4": "beautifulsoup4",
    "cv2": "opencv-python",
    "dateutil": "python-dateutil",
    "google.protobuf": "protobuf",
    "skimage": "scikit-image",
    "sklearn": "scikit-learn",
    "yaml": "pyyaml",
}
_PIP_WHERE = "into the environment the training runs in (the python of the shown command)"


def _pip_name(module: str) -> tuple[str, str]:
    """The importable root of a module name, and the pip package that provides it."""
    for name, package in _PIP_NAMES.items():
        if module == name or module.startswith(name + "."):
            return name, package
    root = module.split(".")[0]
    return root, root


def _module_missing(match: re.Match[str]) -> tuple[str, str]:
    module = _group(match, "module")
    root, package = _pip_name(module)
    if module != root:
        return (
            f"python module {module} is missing: {package} is not installed, or a version "
            "without it",
            f"pip install (or upgrade) {package} {_PIP_WHERE}; `pip show {package}` shows the "
            "version there",
        )
    named = "" if package == module else f" (it provides {module})"
    return f"python package {package} is not installed{named}", (
        f"pip install {package} {_PIP_WHERE}"
    )


def _library_missing(match: re.Match[str]) -> tuple[str, str]:
    who, library = _group(match, "who"), _group(match, "library").replace("🤗 ", "")
    return f"{who} needs the {library} library, which is not installed", (
        f"install {library} {_PIP_WHERE}; the next log line gives the pip command"
    )


def _remote_code_packages(match: re.Match[str]) -> tuple[str, str]:
    packages = _group(match, "packages")
    return f"the model's own code needs packages that are not installed: {packages}", (
        f"pip install {packages.replace(',', '')} {_PIP_WHERE}"
    )


def _flash_attention_missing(match: re.Match[str]) -> tuple[str, str]:
    version = _group(match, "version") or "2"
    fix = "pip install flash-attn (CUDA GPUs only)" if version == "2" else "install it"
    return f"FlashAttention {version} is switched on but its package is not installed", (
        f"{fix}, or switch it off: flash_attention: false, or attn_implementation: sdpa"
    )


def _cloud_fs_missing(match: re.Match[str]) -> tuple[str, str]:
    scheme, package = _group(match, "scheme"), _group(match, "package")
    return f"the dataset is on {scheme} storage but {package} is not installed", (
        f"pip install {package} {_PIP_WHERE}"
    )


_DATASET_FIX = (
    "fix the path under datasets: in the config (a file or folder that exists on every node; "
    "relative paths start in the working folder), or download a hub dataset while online"
)


def _dataset_unloadable(match: re.Match[str]) -> tuple[str, str]:
    path = _scrubbed(match.group("path"))
    return f"dataset {path} is neither an existing file or folder nor a reachable hub dataset", (
        _DATASET_FIX
    )


def _dataset_file_missing(match: re.Match[str]) -> tuple[str, str]:
    return f"dataset file {_scrubbed(match.group('path'))} does not exist", _DATASET_FIX


def _hub_dataset_missing(match: re.Match[str]) -> tuple[str, str]:
    return f"no hub dataset {_scrubbed(match.group('path'))}, or no access to it", (
        "check the dataset name under datasets: in the config; for a private or gated one log "
        "in (`hf auth login`) or set HF_TOKEN"
    )


def _dataset_offline(match: re.Match[str]) -> tuple[str, str]:
    path = _scrubbed(match.group("path"))
    return f"dataset {path} is not a local path and the hub is offline (HF_HUB_OFFLINE)", (
        "give a local dataset file or folder under datasets:, or download it while online "
        "(`hf download --repo-type dataset NAME`) so the cache has it"
    )


def _image_missing(match: re.Match[str]) -> tuple[str, str]:
    source = _scrubbed(match.group("path"))
    return (
        f"an image of the dataset cannot be loaded: {source} is not a file, URL or base64 image",
        (
            "fix the image paths in the dataset rows: every file must exist on every node, and "
            "relative paths start in the working folder"
        ),
    )


_MODEL_OFFLINE_FIX = (
    "set base_model to a local model folder, or download it while online (`hf download "
    "ORG/NAME`) so the cache has it; unset HF_HUB_OFFLINE only where the hub is reachable"
)


def _model_offline(match: re.Match[str]) -> tuple[str, str]:
    return (
        "the model is not a local folder, its files are not in the Hugging Face cache, and the "
        "hub is offline (HF_HUB_OFFLINE) or unreachable",
        _MODEL_OFFLINE_FIX,
    )


def _model_unknown(match: re.Match[str]) -> tuple[str, str]:
    model = _scrubbed(match.group("model"))
    return f"{model} is not a local folder, and the hub has no such model (or it is private)", (
        "check base_model's spelling (ORG/NAME) or folder; for a private or gated model log in "
        "(`hf auth login`) or set HF_TOKEN"
    )


def _model_bad_path(match: re.Match[str]) -> tuple[str, str]:
    model = _scrubbed(match.group("model"))
    return f"{model} is neither an existing folder nor a hub model id", (
        "point base_model (and tokenizer or processor paths, if set) at an existing folder that "
        "holds config.json, or use a hub id ORG/NAME"
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
    ("cuda_oom", 80, "HIP out of memory", r"HIP out of memory", _cuda_oom),
    ("cuda_oom", 80, "CUBLAS_STATUS_ALLOC_FAILED", r"CUBLAS_STATUS_ALLOC_FAILED", _cuda_oom),
    # Shared memory first: its messages also say "No space left on device".
    ("shm_full", 85, "(shm)", r"unable to allocate shared memory\(shm\)", _shm_full),
    ("shm_full", 85, "</torch_", r"unable to write to file </torch_", _shm_full),
    ("shm_full", 85, "(shm)", r"insufficient shared memory \(shm\)", _shm_full),
    ("shm_full", 85, "DataLoader worker (pid ",
     r"DataLoader worker \(pid \d+\) is killed by signal: Bus error", _shm_full),
    # Out of host memory: torch's CPU allocator, numpy, python itself.
    ("host_oom", 80, "DefaultCPUAllocator: can't allocate memory",
     r"DefaultCPUAllocator: can't allocate memory: you tried to allocate (?P<bytes>\d+) bytes",
     _host_oom),
    ("host_oom", 80, "Unable to allocate ",
     r"Unable to allocate (?P<size>[\d.]+ [KMGTPE]?i?B) for an array", _host_oom),
    ("host_oom", 80, "ArrowMemoryError: malloc of size ",
     r"ArrowMemoryError: malloc of size (?P<bytes>\d+) failed", _host_oom),
    ("host_oom", 80, "MemoryError", r"(?<![\w.])MemoryError(?::|\s*$)", _host_oom),
    # A full disk: python and safetensors say it, datasets checks before it writes.
    ("disk_full", 80, "No space left on device",
     r"No space left on device(?:: '(?P<path>[^']+)')?", _disk_full),
    ("disk_full", 80, "Disk quota exceeded", r"Disk quota exceeded", _disk_quota),
    ("disk_full", 80, "Not enough disk space. Needed: ",
     r"Not enough disk space\. Needed: (?P<needed>[\d.]+ \w+)", _disk_needed),
    # Missing dataset: axolotl's own check, datasets' messages, an image a row names.
    ("dataset_missing", 80, "The dataset could not be loaded",
     r"The dataset could not be loaded\. This could be due to a misconfigured dataset path "
     r"\((?P<path>.*)\)\. Try double-check", _dataset_unloadable),
    ("dataset_missing", 80, "FileNotFoundError: Unable to find '",
     r"FileNotFoundError: Unable to find '(?P<path>[^']*)'", _dataset_file_missing),
    ("dataset_missing", 80, "Dataset '",
     r"Dataset '(?P<path>[^']*)' doesn't exist on the Hub", _hub_dataset_missing),
    ("dataset_missing", 80, "OfflineModeIsEnabled",
     r"Couldn't reach '(?P<path>[^']*)' on the Hub \(OfflineModeIsEnabled\)", _dataset_offline),
    ("dataset_missing", 80, "Incorrect image source",
     r"Incorrect image source\..*? Got (?P<path>.+?)\.(?: Failed with|\s*$)", _image_missing),
    # Model not found: offline without a cached copy, an unknown hub id, a folder that is not.
    ("model_offline", 80, "We couldn't connect to '",
     r"We couldn't connect to '[^']*' to load the files, and couldn't find them in the cached "
     r"files", _model_offline),
    ("model_offline", 80, "Cannot find the requested files in the disk cache",
     r"Cannot find the requested files in the disk cache and outgoing traffic has been "
     r"disabled", _model_offline),
    ("model_not_found", 80, "valid model identifier",
     r"(?P<model>\S+) is not a local folder and is not a valid model identifier listed on "
     r"'https://huggingface\.co/models'", _model_unknown),
    ("model_not_found", 80, "Repo id must be in the form",
     r"Repo id must be in the form 'repo_name' or 'namespace/repo_name': '(?P<model>[^']*)'",
     _model_bad_path),
    # Missing packages: below the above, since libraries also warn about optional ones.
    ("package_missing", 75, "No module named", r"No module named '(?P<module>[\w.]+)'",
     _module_missing),
    ("package_missing", 75, "was not found in your environment",
     r"(?P<who>\S+) requires the (?P<library>.+?) library but it was not found in your "
     r"environment", _library_missing),
    ("package_missing", 75, "This modeling file requires the following packages",
     r"This modeling file requires the following packages that were not found in your "
     r"environment: (?P<packages>[^.`]+)\.", _remote_code_packages),
    ("package_missing", 75, "FlashAttention",
     r"FlashAttention(?P<version>\d?) has been toggled on, but it cannot be used due to the "
     r"following error: the package (?:for FlashAttention\d? doesn't seem to be installed|"
     r"flash_attn seems to be not installed)", _flash_attention_missing),
    ("package_missing", 75, ":// paths require ",
     r"(?P<scheme>\w+)://(?: or \w+://)? paths require (?P<package>[\w-]+) to be installed",
     _cloud_fs_missing),
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
    # A warning before a download, and torch's only words when a save meets a full disk.
    ("disk_full", 60, "Not enough free disk space to download the file",
     r"Not enough free disk space to download the file", _download_space),
    ("disk_full", 55, "] . unexpected pos ",
     r"inline_container\.cc:\d+\] \. unexpected pos \d+ vs \d+", _torch_write_failed),
    ("disk_full", 55, "PytorchStreamWriter failed writing file",
     r"PytorchStreamWriter failed writing file", _torch_write_failed),
    ("disk_full", 50, "basic_ios::clear: iostream error", r"basic_ios::clear: iostream error",
     _torch_write_failed),
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
    # Consequences: how a process ended, not why; anything above explains more. A data loader
    # worker's SIGKILL at least names the process.
    ("killed_oom", 25, "DataLoader worker (pid ",
     r"DataLoader worker \(pid \d+\) is killed by signal: Killed", _worker_killed),
    ("killed_oom", 20, "exitcode", r"\bexitcode\s*:\s*-9\b", _killed),
    # accelerate's single-process launcher, and the shell (bash names the pid, sh does not).
    ("killed_oom", 20, "<Signals.SIGKILL: 9>", r"died with <Signals\.SIGKILL: 9>", _killed),
    ("killed_oom", 20, "Killed", r"(?:^|: )(?:\d+ )?Killed(?: {2,}\S|\s*$)", _killed),
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

# An exit code is a consequence: as low as the lowest rule that says the same.
_EXIT_PRIORITY = min(rule.priority for rule in _RULES if rule.key == "killed_oom")


def _any_of(needles: list[str]) -> str:
    """A regex that finds any of NEEDLES, as a trie: one branch per distinct next character, so
    a position costs a few compares however many needles there are (a flat a|b|c tries each)."""
    trie: dict[str, dict[str, Any]] = {}
    for needle in needles:
        node = trie
        for char in needle:
            node = node.setdefault(char, {})
        node[""] = {}

    def emit(node: dict[str, Any]) -> str:
        if "" in node:  # a needle ends here: finding this much is enough
            return ""
        branches = [re.escape(char) + emit(rest) for char, rest in sorted(node.items())]
        return branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"

    return emit(trie)


# Ordinary lines (nearly all of a log) fail this one search and cost nothing more.
_PREFILTER = re.compile(_any_of([rule.needle for rule in _RULES]))


def lines_that_may_hint(texts: list[str]) -> list[int]:
    """The indexes of the lines that may give a hint (every other one gives none): one
    prefilter search over them all together (no needle holds a newline)."""
    joined = "\n".join(texts)
    found: list[int] = []
    index, counted_to = 0, 0
    match = _PREFILTER.search(joined)
    escape = joined.find("\x1b")
    while match is not None or escape >= 0:
        at = min(escape if escape >= 0 else len(joined), match.start() if match else len(joined))
        index += joined.count("\n", counted_to, at)
        found.append(index)
        # On to the next line: one hit is enough for this one.
        line_end = joined.find("\n", at)
        if line_end < 0:
            break
        counted_to = line_end
        if match is not None and match.start() < line_end:
            match = _PREFILTER.search(joined, line_end)
        if 0 <= escape < line_end:
            escape = joined.find("\x1b", line_end)
    return found


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


def hint_for_exit_code(exit_code: int) -> FailureHint | None:
    """The hint an exit code alone gives: a SIGKILL (-9), which leaves no line in the log when
    the killed process is the training itself, is most often the kernel's OOM killer."""
    if exit_code != -signal.SIGKILL:
        return None
    cause, fix = _KILLED
    return FailureHint("killed_oom", cause, fix, _EXIT_PRIORITY)


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

    def feed_lines(self, texts: list[str]) -> None:
        """feed() each line; ordinary lines, nearly all of a log, cost one prefilter search
        over them all together (no needle holds a newline, so none spans two lines)."""
        if not texts:
            return
        joined = "\n".join(texts)
        if "\x1b" not in joined and _PREFILTER.search(joined) is None:
            return
        for text in texts:
            self.feed(text)

    def feed_exit(self, exit_code: int) -> FailureHint | None:
        """How the training ended; it fills `best` only if no line explained more."""
        hint = hint_for_exit_code(exit_code)
        if hint is not None and self._best is None:
            self._best = hint
        return hint

    @property
    def best(self) -> FailureHint | None:
        return self._best
