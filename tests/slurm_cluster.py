"""A real two-node SLURM on 127.0.0.1 for tests: its own munged, slurmctld and two slurmd.

Everything belongs to one cluster folder: its munge key and socket (a munged the system may run
is never used or touched), its slurm.conf with ports picked free when it starts (two test workers
or two clusters never clash), a first job id picked at random (the job script derives the master
port from the job id), state, spool, logs and every daemon's pid file. The daemons are stopped
by the pids in those files, never by name.

The nodes are n1 and n2 with NodeAddr=127.0.0.1: a job script reads a node's address from SLURM
(`scontrol show node`), so the names need not resolve and /etc/hosts is never edited.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.helpers import REPO, clean_environ

NODES = ("n1", "n2")
# What the tests call; the daemons live in sbin.
COMMANDS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "sinfo", "srun")
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
INSTALLER = REPO / "harness" / "install_slurm.sh"
# Bounds on waiting for the daemons; far above what they need (about 2 s here).
START_BOUND_S = 90.0
# A bound on waiting for a job, far above what one needs; never a speed target.
JOB_BOUND_S = 900.0
STOP_BOUND_S = 20.0
# Enough for the demo's model on each node; SLURM checks it against a job's --mem only.
NODE_MEMORY_MB = 4000


def missing_commands() -> list[str]:
    return [name for name in COMMANDS if shutil.which(name, path=SEARCH_PATH) is None]


def why_unavailable() -> str | None:
    """None when SLURM can start here; else why not, after trying the project's installer."""
    if not missing_commands():
        return None
    done = subprocess.run(
        ["sh", str(INSTALLER)], capture_output=True, text=True, check=False, timeout=900
    )
    missing = missing_commands()
    if not missing:
        return None
    said = (done.stderr.strip() or done.stdout.strip()).splitlines()
    return f"SLURM is not installed (missing {', '.join(missing)}): {' '.join(said[-1:])}"


def _free_port() -> int:
    # All interfaces: slurmctld and slurmd listen on every address.
    with socket.socket() as probe:
        probe.bind(("", 0))
        return int(probe.getsockname()[1])


@dataclass
class SlurmCluster:
    folder: Path
    conf: Path
    pid_files: list[Path]

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """A clean environment whose SLURM commands talk to this cluster."""
        return clean_environ({"SLURM_CONF": str(self.conf), "PATH": SEARCH_PATH, **(extra or {})})

    def command(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(argv), env=self.env(), capture_output=True, text=True, check=False, timeout=60
        )

    def logs(self) -> str:
        texts = []
        for path in sorted((self.folder / "log").glob("*.log")):
            texts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-2000:]}")
        return "\n".join(texts)

    def job_fields(self, job_id: str) -> dict[str, str]:
        """`scontrol show job`'s fields (JobState, ExitCode, NodeList, RunTime, ...)."""
        done = self.command("scontrol", "--oneliner", "show", "job", job_id)
        return dict(word.split("=", 1) for word in done.stdout.split() if "=" in word)

    def node_states(self) -> dict[str, str]:
        done = self.command("sinfo", "--noheader", "--Node", "--format=%N %t")
        pairs = (line.split() for line in done.stdout.splitlines())
        return {pair[0]: pair[1] for pair in pairs if len(pair) == 2}


def _conf_text(folder: Path, socket_path: Path, first_job_id: int) -> str:
    nodes = "\n".join(
        f"NodeName={name} NodeHostname=localhost NodeAddr=127.0.0.1 Port={_free_port()}"
        f" CPUs=1 RealMemory={NODE_MEMORY_MB}"
        for name in NODES
    )
    return f"""ClusterName=vlmtui
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
AuthType=auth/munge
AuthInfo=socket={socket_path}
CredType=cred/munge
StateSaveLocation={folder}/state
SlurmdSpoolDir={folder}/spool/%n
SlurmctldPidFile={folder}/slurmctld.pid
SlurmdPidFile={folder}/slurmd-%n.pid
SlurmctldLogFile={folder}/log/slurmctld.log
SlurmdLogFile={folder}/log/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
SelectType=select/cons_tres
SlurmUser=root
ReturnToService=2
FirstJobId={first_job_id}
# A finished job stays visible to scontrol this long (there is no accounting database here).
MinJobAge=3600
{nodes}
PartitionName=debug Nodes={",".join(NODES)} Default=YES MaxTime=INFINITE State=UP
"""


def start_cluster() -> SlurmCluster:
    """munged, slurmctld and n1, n2 started; returns once sinfo shows both idle."""
    # Not under pytest's basetemp: munged wants every folder above its socket open to all.
    folder = Path(tempfile.mkdtemp(prefix="vlm-tui-slurm-"))
    folder.chmod(0o755)
    for sub in ("state", "log", "munge", *(f"spool/{name}" for name in NODES)):
        (folder / sub).mkdir(parents=True)
    (folder / "munge").chmod(0o755)
    secret = folder / "munge-key"
    secret.mkdir(mode=0o700)
    key = secret / "munge.key"
    key.write_bytes(os.urandom(128))
    key.chmod(0o600)
    socket_path = folder / "munge" / "munge.socket"
    conf = folder / "slurm.conf"
    # Job ids set the master port (15000 + the last 4 digits): two clusters start apart.
    conf.write_text(_conf_text(folder, socket_path, random.randrange(10_000, 990_000)))
    cluster = SlurmCluster(folder, conf, [])
    munged_pid = folder / "munge" / "munged.pid"
    starts = [
        (
            munged_pid,
            [
                "munged",
                f"--socket={socket_path}",
                f"--key-file={key}",
                f"--pid-file={munged_pid}",
                f"--log-file={folder}/log/munged.log",
                f"--seed-file={folder}/munge/munged.seed",
            ],
        ),
        (folder / "slurmctld.pid", ["slurmctld", "-f", str(conf)]),
        *(
            (folder / f"slurmd-{name}.pid", ["slurmd", "-f", str(conf), "-N", name])
            for name in NODES
        ),
    ]
    try:
        for pid_file, argv in starts:
            # Each daemon forks into the background; its pid file is how it is stopped.
            cluster.pid_files.append(pid_file)
            done = subprocess.run(
                argv, cwd=folder, env=cluster.env(), capture_output=True, text=True, timeout=60
            )
            if done.returncode != 0:
                raise RuntimeError(f"{argv[0]} did not start: {done.stderr.strip()}")
            _wait_for(pid_file.is_file, f"{argv[0]}'s pid file", cluster)
        _wait_for(
            lambda: all(cluster.node_states().get(name) == "idle" for name in NODES),
            "both nodes idle in sinfo",
            cluster,
        )
    except BaseException:
        stop_cluster(cluster)
        raise
    return cluster


def _wait_for(ready: object, what: str, cluster: SlurmCluster) -> None:
    assert callable(ready)
    deadline = time.monotonic() + START_BOUND_S
    while not ready():
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"SLURM on loopback: no {what} after {START_BOUND_S:.0f} s\n{cluster.logs()}"
            )
        time.sleep(0.2)


def _pid_of(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def stop_cluster(cluster: SlurmCluster) -> None:
    """Stop each daemon by the pid in its pid file (slurmd first, munged last), then remove the
    cluster folder, which this module created."""
    for pid_file in reversed(cluster.pid_files):
        pid = _pid_of(pid_file)
        if pid is None or not _alive(pid):
            continue
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_BOUND_S
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    shutil.rmtree(cluster.folder, ignore_errors=True)
