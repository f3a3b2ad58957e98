"""Pre-flight checks run before a distributed launch and by `vlm-tui doctor`.

A multi-node run that is misconfigured rarely fails fast: a wrong MASTER_ADDR, a busy port or an
interface name that matches nothing shows up minutes later as a rendezvous timeout or an NCCL
error deep in a log. Each check here looks at one such cause on this node, in a second or two,
and says what it found and what to do. They never import torch or axolotl (start-up stays
light), and every network operation is bounded by a timeout.
"""

from __future__ import annotations

import errno
import importlib.metadata
import ipaddress
import os
import re
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import psutil

Outcome = Literal["pass", "warn", "fail"]

TRAIN_EXTRA_FIX = "pip install 'vlm-tui[train]'"
MIN_PYTHON = (3, 11)
# The training stack the launched child imports; only its metadata is read here.
TRAINING_DISTRIBUTIONS = ("torch", "accelerate", "axolotl")
# getaddrinfo has no timeout of its own; a stuck resolver must not hang the check.
DNS_TIMEOUT_S = 5.0

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Filesystems whose content only this node sees (overlay: a container's own root).
LOCAL_FILESYSTEMS = frozenset(
    {"ext2", "ext3", "ext4", "xfs", "btrfs", "tmpfs", "overlay", "zfs", "f2fs", "ramfs"}
)
SHARED_FILESYSTEMS = frozenset(
    {
        "nfs",
        "nfs4",
        "lustre",
        "gpfs",
        "beegfs",
        "cifs",
        "smb3",
        "smbfs",
        "ceph",
        "cephfs",
        "wekafs",
        "9p",
        "glusterfs",
        "ocfs2",
    }
)
NODE_LOCAL_FOLDERS = (PurePosixPath("/tmp"), PurePosixPath("/var/tmp"), PurePosixPath("/dev/shm"))


@dataclass(frozen=True)
class Check:
    name: str  # short, e.g. "master address", "master port", "python", "NCCL_SOCKET_IFNAME"
    outcome: Outcome
    detail: str  # one line: what was found
    fix: str = ""  # one line: what to do (empty on pass)


def _plural(count: int, word: str, plural: str = "") -> str:
    return f"{count} {word}" if count == 1 else f"{count} {plural or word + 's'}"


# --- versions -------------------------------------------------------------------------------


def check_versions(
    *,
    distributions: Mapping[str, str] | None = None,
    python: tuple[int, int, int] | None = None,
) -> list[Check]:
    """Python, torch, accelerate and axolotl, read from package metadata only.

    `distributions` (name -> version) replaces the installed metadata, for tests: a name that is
    absent counts as not installed.
    """
    found = python or (sys.version_info.major, sys.version_info.minor, sys.version_info.micro)
    shown = ".".join(str(part) for part in found)
    checks = [
        Check("python", "pass", f"Python {shown}")
        if found[:2] >= MIN_PYTHON
        else Check(
            "python",
            "fail",
            f"Python {shown} is older than {'.'.join(map(str, MIN_PYTHON))}",
            "run vlm-tui with Python 3.11 or newer",
        )
    ]
    for name in TRAINING_DISTRIBUTIONS:
        version = _distribution_version(name, distributions)
        if version:
            checks.append(Check(name, "pass", f"{name} {version}"))
        else:
            checks.append(
                Check(name, "fail", f"{name} is not installed in this environment", TRAIN_EXTRA_FIX)
            )
    return checks


def _distribution_version(name: str, distributions: Mapping[str, str] | None) -> str | None:
    if distributions is not None:
        return distributions.get(name)
    try:
        # Metadata only: importing torch here would cost seconds and gigabytes.
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


# --- GPUs -----------------------------------------------------------------------------------


def compact_gpu_names(gpu_names: Sequence[str]) -> str:
    """'2 x NVIDIA H100 80GB HBM3', or one group per model in order of appearance."""
    return ", ".join(f"{count} x {name}" for name, count in Counter(gpu_names).items())


def check_gpus(gpu_names: Sequence[str], processes_per_node: int, note: str) -> Check:
    if not gpu_names:
        # The hardware probe's note often ends with the same conclusion; say it once.
        reason = note.strip().removesuffix(": training runs on the CPU") or "no GPU found"
        detail = f"training runs on the CPU (gloo): {reason}"
        if processes_per_node > 1:
            detail += f"; {processes_per_node} CPU processes per node"
        return Check(
            "GPUs",
            "warn",
            detail,
            "if this node has NVIDIA GPUs, check the driver (nvidia-smi) and CUDA_VISIBLE_DEVICES",
        )
    count = len(gpu_names)
    compact = compact_gpu_names(gpu_names)
    if count < processes_per_node:
        return Check(
            "GPUs",
            "fail",
            f"{_plural(count, 'GPU')} ({compact}) for "
            f"{_plural(processes_per_node, 'process', 'processes')} per node",
            f"run at most {_plural(count, 'process', 'processes')} per node, "
            "or check CUDA_VISIBLE_DEVICES",
        )
    used = "" if count == processes_per_node else f", {processes_per_node} used"
    return Check("GPUs", "pass", f"{compact}{used}")


# --- master address -------------------------------------------------------------------------


def _resolve_bounded(
    resolve: Callable[..., Any], host: str, port: int | None, timeout_s: float
) -> list[Any]:
    """getaddrinfo with a deadline: the lookup runs in a daemon thread that may be abandoned."""
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            box["result"] = list(resolve(host, port, type=socket.SOCK_STREAM))
        except Exception as error:
            box["error"] = error

    worker = threading.Thread(target=work, name="preflight-resolve", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        raise TimeoutError(f"no answer from the resolver within {timeout_s:g} s")
    if "error" in box:
        raise box["error"]
    result: list[Any] = box["result"]
    return result


def _as_ip(text: str) -> IPAddress | None:
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])  # drop an IPv6 scope ("%eth0")
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _addresses_of(infos: Sequence[Any]) -> list[IPAddress]:
    found: list[IPAddress] = []
    for info in infos:
        address = _as_ip(str(info[4][0]))
        if address is not None and address not in found:
            found.append(address)
    return found


def _interface_addresses() -> set[IPAddress]:
    found: set[IPAddress] = set()
    try:
        interfaces = psutil.net_if_addrs()
    except (psutil.Error, OSError):
        return found
    for entries in interfaces.values():
        for entry in entries:
            if entry.family in (socket.AF_INET, socket.AF_INET6):
                address = _as_ip(entry.address)
                if address is not None:
                    found.add(address)
    return found


def _is_local(addresses: Sequence[IPAddress], resolve: Callable[..., Any]) -> bool:
    # Cheapest first: loopback, then the interfaces, and only then a hostname lookup.
    if any(address.is_loopback for address in addresses):
        return True
    if set(addresses) & _interface_addresses():
        return True
    try:
        own = _addresses_of(_resolve_bounded(resolve, socket.gethostname(), None, DNS_TIMEOUT_S))
    except (OSError, ValueError, OverflowError):
        return False
    return bool(set(addresses) & set(own))


def check_master_address(
    address: str,
    port: int,
    node_rank: int,
    *,
    resolve: Callable[..., Any] = socket.getaddrinfo,
) -> Check:
    name = "master address"
    if not address.strip():
        return Check(
            name, "fail", "MASTER_ADDR is empty", "set MASTER_ADDR to the master's name or IP"
        )
    lookup_port = port if 0 < port < 65536 else None
    try:
        # One bounded try: the launch itself (TCPStore) keeps retrying later.
        addresses = _addresses_of(_resolve_bounded(resolve, address, lookup_port, DNS_TIMEOUT_S))
    except (OSError, ValueError, OverflowError) as error:
        return Check(
            name,
            "fail",
            f"{address} does not resolve: {_describe(error)}",
            "check MASTER_ADDR's spelling and this node's DNS, or use the master's IP address",
        )
    if not addresses:
        return Check(
            name,
            "fail",
            f"{address} resolves to no IP address",
            "use the master's IP address in MASTER_ADDR",
        )
    shown = ", ".join(str(a) for a in addresses)
    if node_rank > 0:
        if any(a.is_loopback for a in addresses):
            # Right only when every "node" runs on this host (a local test); the bounded wait
            # for the master then tells the two cases apart, so this warns instead of failing.
            return Check(
                name,
                "warn",
                f"{address} resolves to {shown}: on a worker, loopback points at this host itself;"
                " right only if every node runs on this host",
                "set MASTER_ADDR to the master node's reachable name or IP, the same on every node",
            )
        return Check(name, "pass", f"{address} resolves to {shown}")
    if not _is_local(addresses, resolve):
        return Check(
            name,
            "warn",
            f"{address} resolves to {shown}, which is not an address of this host",
            "RANK 0 must run on the host MASTER_ADDR names: check RANK and MASTER_ADDR",
        )
    return Check(name, "pass", f"{address} resolves to {shown}, this host")


# --- master port ----------------------------------------------------------------------------


def _describe(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__


def _port_owner(port: int) -> int | None:
    """The pid listening on `port`, when the OS lets us see it (often only for our own user)."""
    try:
        connections = psutil.net_connections(kind="inet")
    except (psutil.Error, OSError):
        return None
    for connection in connections:
        if (
            connection.status == psutil.CONN_LISTEN
            and connection.laddr
            and connection.laddr.port == port
            and connection.pid is not None
        ):
            return connection.pid
    return None


def _process_label(pid: int) -> str:
    try:
        return f"pid {pid}, {psutil.Process(pid).name()}"
    except (psutil.Error, OSError):
        return f"pid {pid}"


def _free_port(family: socket.AddressFamily) -> int | None:
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind(("", 0))
            port: int = probe.getsockname()[1]
            return port
    except OSError:
        return None


def check_port_free(port: int, host: str = "") -> Check:
    name = "master port"
    if not 0 < port < 65536:
        return Check(
            name,
            "fail",
            f"MASTER_PORT {port} is not a TCP port",
            "use a port between 1024 and 65535",
        )
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    where = host or "all interfaces"
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            # Like the rendezvous server (TCPStore) itself: connections in TIME_WAIT from an
            # earlier run do not block it, a live listener does.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as error:
        return _port_taken(name, port, where, error, family)
    return Check(name, "pass", f"port {port} is free on {where}")


def _port_taken(
    name: str, port: int, where: str, error: OSError, family: socket.AddressFamily
) -> Check:
    spare = _free_port(family)
    pick = f"pick a free port on every node, e.g. MASTER_PORT={spare or 29501}"
    if error.errno == errno.EACCES:
        return Check(name, "fail", f"port {port} needs root privileges to bind", pick)
    if error.errno != errno.EADDRINUSE:
        return Check(name, "fail", f"cannot bind port {port} on {where}: {_describe(error)}", pick)
    pid = _port_owner(port)
    if pid is None:
        return Check(name, "fail", f"port {port} is already in use on this host", pick)
    return Check(
        name,
        "fail",
        f"port {port} is already in use on this host ({_process_label(pid)})",
        f"stop the earlier run (pid {pid}), or {pick}",
    )


# --- waiting for the master -----------------------------------------------------------------


def _connect_once(address: str, port: int, timeout_s: float) -> None:
    """One TCP connect to the first address that accepts; closed at once, nothing is sent."""
    infos = _resolve_bounded(socket.getaddrinfo, address, port, timeout_s)
    last: OSError = OSError(f"{address} resolves to no address")
    for family, kind, proto, _, sockaddr in infos:
        try:
            with socket.socket(family, kind, proto) as connection:
                connection.settimeout(timeout_s)
                connection.connect(sockaddr)
                return
        except OSError as error:
            last = error
    raise last


def wait_for_master(
    address: str,
    port: int,
    timeout_s: float,
    *,
    interval_s: float = 1.0,
    connect_timeout_s: float = 2.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Check:
    """On a worker: retry a TCP connect to MASTER_ADDR:MASTER_PORT until it accepts or time is up.

    Before the master starts, nothing listens there, so one refused connect proves nothing;
    retrying for a bounded time tells a slow master from an unreachable one.
    """
    name = "master reachable"
    start = clock()
    deadline = start + timeout_s
    tries = 0
    last_error = "no attempt"
    while True:
        tries += 1
        # Never wait past the deadline, but leave each connect a moment to complete.
        budget = max(0.1, min(connect_timeout_s, deadline - clock()))
        try:
            _connect_once(address, port, budget)
        except (OSError, ValueError, OverflowError) as error:
            last_error = _describe(error)
        else:
            elapsed = clock() - start
            return Check(
                name,
                "pass",
                f"{address}:{port} accepted a connection after {elapsed:.1f} s "
                f"({_plural(tries, 'try', 'tries')})",
            )
        now = clock()
        if now >= deadline:
            break
        sleep(min(interval_s, deadline - now))
    return Check(
        name,
        "fail",
        f"{address}:{port} did not accept a connection within {timeout_s:g} s "
        f"({_plural(tries, 'try', 'tries')}, last: {last_error})",
        "check MASTER_ADDR/MASTER_PORT and the firewall between nodes; "
        "start the master (RANK 0) first or at the same time",
    )


# --- network interfaces ---------------------------------------------------------------------


def _interface_names() -> list[str]:
    try:
        return [name for _, name in socket.if_nameindex()]
    except OSError:
        try:
            return list(psutil.net_if_addrs())
        except (psutil.Error, OSError):
            return []


def nccl_selected_interfaces(value: str, interface_names: Collection[str]) -> list[str]:
    """The interfaces NCCL_SOCKET_IFNAME selects, with NCCL's own rules.

    A comma-separated list of name prefixes; a leading '^' selects everything that does *not*
    match, a leading '=' (after any '^') asks for exact names; ':port' suffixes are ignored.
    """
    text = value.strip()
    exclude = text.startswith("^")
    if exclude:
        text = text[1:]
    exact = text.startswith("=")
    if exact:
        text = text[1:]
    wanted = [item.split(":", 1)[0].strip() for item in text.split(",")]
    wanted = [item for item in wanted if item]

    def matches(interface: str) -> bool:
        if not wanted:  # NCCL treats an empty list as matching everything
            return True
        if exact:
            return interface in wanted
        return any(interface.startswith(prefix) for prefix in wanted)

    return [name for name in interface_names if matches(name) != exclude]


def _addressed_interfaces() -> set[str]:
    """Interfaces with a non-loopback IP address: the ones worth suggesting."""
    try:
        interfaces = psutil.net_if_addrs()
    except (psutil.Error, OSError):
        return set()
    found: set[str] = set()
    for name, entries in interfaces.items():
        for entry in entries:
            address = _as_ip(entry.address) if entry.family == socket.AF_INET else None
            if address is not None and not address.is_loopback:
                found.add(name)
    return found


def _suggested_interface(interface_names: Sequence[str], addressed: Collection[str]) -> str:
    # NCCL's own fallback skips lo, docker* and virbr*; veth/ifb/tun never carry node traffic.
    usable = [
        name
        for name in interface_names
        if not name.startswith(("lo", "docker", "virbr", "veth", "ifb", "tun"))
    ]
    for name in usable:
        if name in addressed:
            return name
    return usable[0] if usable else "eth0"


def check_socket_ifnames(
    environ: Mapping[str, str], interface_names: Collection[str] | None = None
) -> list[Check]:
    if interface_names is None:
        names = _interface_names()
        addressed = _addressed_interfaces()
    else:
        # Caller-given names describe another (or a fake) host: don't mix in this one's.
        names, addressed = list(interface_names), set()
    existing = ", ".join(names) or "none"
    checks: list[Check] = []

    nccl = environ.get("NCCL_SOCKET_IFNAME", "").strip()
    if nccl:
        selected = nccl_selected_interfaces(nccl, names)
        if selected:
            checks.append(
                Check(
                    "NCCL_SOCKET_IFNAME",
                    "pass",
                    f"NCCL_SOCKET_IFNAME={nccl} selects {', '.join(selected)}",
                )
            )
        else:
            checks.append(
                Check(
                    "NCCL_SOCKET_IFNAME",
                    "fail",
                    f"NCCL_SOCKET_IFNAME={nccl} matches no interface here (have: {existing})",
                    f"set NCCL_SOCKET_IFNAME to the interface between the nodes, e.g. "
                    f"{_suggested_interface(names, addressed)}, or unset it",
                )
            )

    gloo = environ.get("GLOO_SOCKET_IFNAME", "").strip()
    if gloo:
        # Gloo opens one device per listed name and fails on any that does not exist.
        wanted = [item.strip() for item in gloo.split(",") if item.strip()]
        missing = [item for item in wanted if item not in names]
        if missing:
            checks.append(
                Check(
                    "GLOO_SOCKET_IFNAME",
                    "fail",
                    f"GLOO_SOCKET_IFNAME names {', '.join(missing)}, not an interface here "
                    f"(have: {existing})",
                    f"set GLOO_SOCKET_IFNAME to exact interface names, e.g. "
                    f"{_suggested_interface(names, addressed)}, or unset it",
                )
            )
        else:
            checks.append(
                Check("GLOO_SOCKET_IFNAME", "pass", f"GLOO_SOCKET_IFNAME={gloo}: all present")
            )
    return checks


# --- output folder --------------------------------------------------------------------------


def check_output_writable(output_dir: Path) -> Check:
    """The output folder, or the folder it will be created in, is writable. Creates nothing."""
    name = "output folder"
    target = Path(os.path.abspath(output_dir.expanduser()))
    probe = target
    while not probe.exists():
        if probe.is_symlink():
            return Check(
                name, "fail", f"{probe} is a broken symbolic link", "fix or remove the link"
            )
        if probe.parent == probe:
            break
        probe = probe.parent
    fix = "choose an output folder this user can write to, or fix its permissions"
    if not probe.is_dir():
        return Check(name, "fail", f"{probe} exists but is not a folder", fix)
    # W_OK to add entries, X_OK to enter the folder; also false on a read-only mount.
    if not os.access(probe, os.W_OK | os.X_OK):
        return Check(name, "fail", f"{probe} is not writable by this user", fix)
    if probe == target:
        return Check(name, "pass", f"{target} is writable")
    return Check(name, "pass", f"{target} will be created in {probe}, which is writable")


# --- shared storage -------------------------------------------------------------------------


def _unescape_mount(field: str) -> str:
    # /proc/mounts writes space, tab, newline and backslash as octal escapes (\040 ...).
    return re.sub(r"\\([0-7]{3})", lambda match: chr(int(match[1], 8)), field)


def _read_mounts(mounts_file: Path) -> list[tuple[PurePosixPath, str]]:
    mounts: list[tuple[PurePosixPath, str]] = []
    try:
        text = mounts_file.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return mounts
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 3:
            mounts.append((PurePosixPath(_unescape_mount(fields[1])), fields[2]))
    return mounts


def _mount_of(
    path: PurePosixPath, mounts: Sequence[tuple[PurePosixPath, str]]
) -> tuple[PurePosixPath, str] | None:
    best: tuple[PurePosixPath, str] | None = None
    for mount_point, fstype in mounts:
        if path.is_relative_to(mount_point) and (
            # `>=`: a later mount on the same point hides the earlier one.
            best is None or len(mount_point.parts) >= len(best[0].parts)
        ):
            best = (mount_point, fstype)
    return best


def check_shared_storage(
    output_dir: Path, nodes: int, *, mounts_file: Path = Path("/proc/mounts")
) -> Check:
    """With several nodes, the output folder should be on storage every node sees."""
    name = "shared storage"
    if nodes <= 1:
        return Check(name, "pass", "single node: shared storage not needed")
    fix = (
        "use an output folder on shared storage (NFS, Lustre) so rank 0's checkpoints and final "
        "model are visible to all nodes and resumable"
    )
    given = PurePosixPath(os.path.abspath(output_dir.expanduser()))
    resolved = PurePosixPath(Path(given).resolve())
    for folder in NODE_LOCAL_FOLDERS:
        if given.is_relative_to(folder) or resolved.is_relative_to(folder):
            return Check(name, "warn", f"{given} is under {folder}, which is local to a node", fix)
    mount = _mount_of(resolved, _read_mounts(mounts_file))
    if mount is None:
        return Check(name, "pass", f"filesystem type of {given} unknown (no mount table)")
    mount_point, fstype = mount
    if fstype in LOCAL_FILESYSTEMS:
        return Check(
            name,
            "warn",
            f"{given} is on {fstype} (mounted at {mount_point}), local to this node",
            fix,
        )
    if fstype in SHARED_FILESYSTEMS or fstype.startswith("fuse."):
        return Check(name, "pass", f"{given} is on {fstype} (mounted at {mount_point}), shared")
    return Check(name, "pass", f"{given} is on {fstype} (mounted at {mount_point}): assumed shared")
