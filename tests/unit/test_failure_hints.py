"""Failure hints: real captured failure logs, exact message texts, priorities and prefixes.

The fixtures under fixtures/distributed/ were captured from real torch, torchrun and accelerate
runs on the loopback address (fixtures/distributed/capture.py makes them again). Those under
fixtures/failures/ were captured from torch 2.13, numpy 2.3, pyarrow 26, safetensors 0.8,
datasets 4.8, transformers 5.16, accelerate 1.13 and axolotl 0.19 failing for real: an
address-space limit, SIGKILL, a tiny tmpfs, missing names offline (fixtures/failures/capture.py
makes them again). Messages that need GPUs or several hosts (NCCL, CUDA) are checked on their
exact text from the failure table of the distributed notes, or on the format strings in the
libraries' source.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.helpers import clean_environ
from vlm_tui.core.output import failure_hints
from vlm_tui.core.output.failure_hints import (
    FailureHint,
    FailureScanner,
    hint_for_exit_code,
    hint_for_line,
)
from vlm_tui.core.output.run_state import RunState
from vlm_tui.core.records.folder import RunPaths, read_json, write_json_atomic
from vlm_tui.headless import summary_lines

FIXTURES = Path(__file__).parent.parent / "fixtures"
DISTRIBUTED = FIXTURES / "distributed"
FAILURES = FIXTURES / "failures"

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
    "host_oom",
    "shm_full",
    "disk_full",
    "dataset_missing",
    "model_offline",
    "model_not_found",
    "package_missing",
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
    # Below, "captured" lines come from fixtures/failures/ (the library versions in the module
    # docstring); the others are the libraries' own format strings, filled in.
    # cuda_oom: torch 2.0-2.4 named the class torch.cuda.OutOfMemoryError; ROCm says HIP.
    (
        "torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 MiB (GPU 0; "
        "7.79 GiB total capacity; 5.59 GiB already allocated; 10.06 MiB free; 5.64 GiB reserved "
        "in total by PyTorch)",
        "cuda_oom",
        ("GPU 0", "20.00 MiB"),
    ),
    (
        "RuntimeError: HIP out of memory. Tried to allocate 2.00 GiB (GPU 0; 63.98 GiB total "
        "capacity; 61.20 GiB already allocated)",
        "cuda_oom",
        ("GPU 0", "2.00 GiB"),
    ),
    (
        "RuntimeError: CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`",
        "cuda_oom",
        ("GPU",),
    ),
    # host_oom: captured under RLIMIT_AS from torch, numpy, pyarrow and python.
    (
        "RuntimeError: [enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't "
        "allocate memory: you tried to allocate 68719476736 bytes. Error code 12 (Cannot allocate "
        "memory)",
        "host_oom",
        ("RAM", "64.0 GiB"),
    ),
    (
        "numpy._core._exceptions._ArrayMemoryError: Unable to allocate 8.00 GiB for an array with "
        "shape (8589934592,) and data type uint8",
        "host_oom",
        ("8.00 GiB",),
    ),
    ("pyarrow.lib.ArrowMemoryError: malloc of size 8589934592 failed", "host_oom", ("8.0 GiB",)),
    ("MemoryError", "host_oom", ("RAM",)),
    ("[rank0]: MemoryError: std::bad_alloc", "host_oom", ("RAM",)),
    # killed_oom: captured: a loader worker, accelerate's launcher, bash and sh.
    (
        "RuntimeError: DataLoader worker (pid 16340) is killed by signal: Killed. ",
        "killed_oom",
        ("data loader worker", "OOM"),
    ),
    (
        "subprocess.CalledProcessError: Command '['/venv/bin/python3', 'sigkill.py']' died with "
        "<Signals.SIGKILL: 9>.",
        "killed_oom",
        ("SIGKILL",),
    ),
    (
        "bash: line 1: 18815 Killed                  '/venv/bin/python' sigkill.py",
        "killed_oom",
        ("OOM",),
    ),
    ("Killed", "killed_oom", ("OOM",)),
    # shm_full: captured with a 1 MiB /dev/shm; torch's older text; its bus-error messages.
    (
        "RuntimeError: unable to allocate shared memory(shm) for file "
        "</torch_18902_2732180947_0>: No space left on device (28)",
        "shm_full",
        ("/dev/shm",),
    ),
    (
        "RuntimeError: unable to write to file </torch_6004_3394634227_0>: No space left on "
        "device (28)",
        "shm_full",
        ("/dev/shm",),
    ),
    (
        "ERROR: Unexpected bus error encountered in worker. This might be caused by insufficient "
        "shared memory (shm).",
        "shm_full",
        ("shared memory",),
    ),
    (
        "RuntimeError: DataLoader worker (pid 2310) is killed by signal: Bus error. It is "
        "possible that dataloader's workers are out of shared memory. Please try to raise your "
        "shared memory limit.",
        "shm_full",
        ("shared memory",),
    ),
    # disk_full: captured on a full tmpfs (python, safetensors, pyarrow, torch.save); the
    # quota's errno text; datasets' and huggingface_hub's own checks.
    ("OSError: [Errno 28] No space left on device", "disk_full", ("disk is full",)),
    (
        "OSError: [Errno 28] No space left on device: '/data/out/checkpoint-16'",
        "disk_full",
        ("/data/out/checkpoint-16",),
    ),
    (
        "safetensors._safetensors_rust.SafetensorError: Error while serializing: I/O error: No "
        "space left on device (os error 28)",
        "disk_full",
        ("disk is full",),
    ),
    (
        "OSError: [Errno 28] Error writing bytes to file. Detail: [errno 28] No space left on "
        "device",
        "disk_full",
        ("disk is full",),
    ),
    ("OSError: [Errno 122] Disk quota exceeded", "disk_full", ("quota",)),
    (
        "OSError: Not enough disk space. Needed: 1.20 GiB (download: 1.00 GiB, generated: 200.00 "
        "MiB, post-processed: Unknown size)",
        "disk_full",
        ("1.20 GiB",),
    ),
    (
        "UserWarning: Not enough free disk space to download the file. The expected file size "
        "is: 4965.80 MB. The target location /data/hf/hub only has 1024.00 MB free disk space.",
        "disk_full",
        ("disk space",),
    ),
    (
        "RuntimeError: [enforce fail at inline_container.cc:672] . unexpected pos 54080 vs 53968",
        "disk_full",
        ("full disk",),
    ),
    ("RuntimeError: basic_ios::clear: iostream error", "disk_full", ("full disk",)),
    (
        "RuntimeError: [enforce fail at inline_container.cc:588] . PytorchStreamWriter failed "
        "writing file data/0: file write failed",
        "disk_full",
        ("full disk",),
    ),
    # dataset_missing: captured from axolotl (a missing file, an unknown hub dataset offline,
    # a row naming a missing image) and datasets; datasets' message when online.
    (
        "ValueError: The dataset could not be loaded. This could be due to a misconfigured "
        "dataset path (/data/missing/train.jsonl). Try double-check your path / name / "
        "data_files. This is not caused by the dataset type.",
        "dataset_missing",
        ("/data/missing/train.jsonl",),
    ),
    (
        "FileNotFoundError: Unable to find '/data/missing/train.jsonl'",
        "dataset_missing",
        ("/data/missing/train.jsonl",),
    ),
    (
        "ConnectionError: Couldn't reach 'no-such-org/no-such-dataset' on the Hub "
        "(OfflineModeIsEnabled)",
        "dataset_missing",
        ("no-such-org/no-such-dataset", "offline"),
    ),
    (
        "datasets.exceptions.DatasetNotFoundError: Dataset 'no-such-org/no-such-dataset' doesn't "
        "exist on the Hub or cannot be accessed.",
        "dataset_missing",
        ("no-such-org/no-such-dataset",),
    ),
    (
        "ValueError: Incorrect image source. Must be a valid URL starting with `http://` or "
        "`https://`, a valid path to an image file, or a base64 encoded string. Got "
        "/data/missing/img/0.png. Failed with Invalid base64-encoded string: number of data "
        "characters (25) cannot be 1 more than a multiple of 4",
        "dataset_missing",
        ("/data/missing/img/0.png",),
    ),
    # model_offline: captured from transformers and huggingface_hub with HF_HUB_OFFLINE=1.
    (
        "OSError: We couldn't connect to 'https://huggingface.co' to load the files, and "
        "couldn't find them in the cached files.",
        "model_offline",
        ("offline",),
    ),
    (
        "huggingface_hub.errors.LocalEntryNotFoundError: Cannot find the requested files in the "
        "disk cache and outgoing traffic has been disabled. To enable hf.co look-ups and "
        "downloads online, set 'local_files_only' to False.",
        "model_offline",
        ("cache",),
    ),
    # model_not_found: a folder that is not (captured through axolotl); an unknown id online.
    (
        "OSError: Repo id must be in the form 'repo_name' or 'namespace/repo_name': "
        "'/data/models/no-such-model'. Use `repo_type` argument if needed.",
        "model_not_found",
        ("/data/models/no-such-model",),
    ),
    (
        "OSError: no-such-org/no-such-model is not a local folder and is not a valid model "
        "identifier listed on 'https://huggingface.co/models'",
        "model_not_found",
        ("no-such-org/no-such-model",),
    ),
    # package_missing: captured from python, transformers and axolotl.
    (
        "ModuleNotFoundError: No module named 'no_such_module_xyz'",
        "package_missing",
        ("no_such_module_xyz",),
    ),
    ("ModuleNotFoundError: No module named 'yaml'", "package_missing", ("pyyaml",)),
    (
        "ModuleNotFoundError: No module named 'axolotl.integrations.nothing_here'",
        "package_missing",
        ("axolotl.integrations.nothing_here", "version"),
    ),
    (
        "TimmWrapperModel requires the timm library but it was not found in your environment. "
        "You can install it with pip:",
        "package_missing",
        ("timm", "TimmWrapperModel"),
    ),
    (
        "ImportError: This modeling file requires the following packages that were not found in "
        "your environment: no_such_module_xyz. Run `pip install no_such_module_xyz`",
        "package_missing",
        ("no_such_module_xyz",),
    ),
    (
        "ImportError: FlashAttention2 has been toggled on, but it cannot be used due to the "
        "following error: the package for FlashAttention2 doesn't seem to be installed.",
        "package_missing",
        ("FlashAttention 2",),
    ),
    ("ImportError: oci:// paths require ocifs to be installed", "package_missing", ("ocifs",)),
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

# (fixture under failures/, key of the scanner's best hint)
FAILURE_LOGS = {
    "host_oom_torch.log": "host_oom",
    "host_oom_python.log": "host_oom",
    "host_oom_numpy.log": "host_oom",
    "host_oom_arrow.log": "host_oom",
    "killed_shell.log": "killed_oom",
    "killed_accelerate.log": "killed_oom",
    "killed_loader_worker.log": "killed_oom",
    "shm_full.log": "shm_full",
    "disk_full_python.log": "disk_full",
    "disk_full_torch.log": "disk_full",
    "disk_full_safetensors.log": "disk_full",
    "disk_full_arrow.log": "disk_full",
    "disk_full_train.log": "disk_full",
    "package_missing_import.log": "package_missing",
    "package_missing_backend.log": "package_missing",
    "package_missing_flash_attention.log": "package_missing",
    "package_missing_remote_code.log": "package_missing",
    "package_missing_cloud_dataset.log": "package_missing",
    "model_offline.log": "model_offline",
    "model_offline_train.log": "model_offline",
    "model_bad_path_train.log": "model_not_found",
    "dataset_file_missing.log": "dataset_missing",
    "dataset_offline.log": "dataset_missing",
    "dataset_missing_train.log": "dataset_missing",
    "dataset_hub_offline_train.log": "dataset_missing",
    "image_missing_train.log": "dataset_missing",
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
    assert "image_size" in fixes["cuda_oom"]
    assert "gradient_checkpointing" in fixes["cuda_oom"]
    assert "micro_batch_size" in fixes["host_oom"]
    assert "--shm-size" in fixes["shm_full"]
    assert "df -h" in fixes["disk_full"]
    assert "save_total_limit" in fixes["disk_full"]
    assert "datasets:" in fixes["dataset_missing"]
    assert "base_model" in fixes["model_offline"]
    assert "HF_HUB_OFFLINE" in fixes["model_offline"]
    assert "base_model" in fixes["model_not_found"]
    assert "pip install no_such_module_xyz" in fixes["package_missing"]


@pytest.mark.parametrize("name", sorted(REAL_LOGS))
def test_real_log_gives_expected_best_hint(name: str) -> None:
    best = scan(read_lines(DISTRIBUTED / name)).best
    assert best is not None, name
    assert best.key == REAL_LOGS[name]


def test_every_captured_log_is_checked() -> None:
    assert {p.name for p in DISTRIBUTED.glob("*.log")} == set(REAL_LOGS)


@pytest.mark.parametrize("name", sorted(FAILURE_LOGS))
def test_real_failure_log_gives_expected_best_hint(name: str) -> None:
    best = scan(read_lines(FAILURES / name)).best
    assert best is not None, name
    assert best.key == FAILURE_LOGS[name]
    for text in (best.cause, best.fix):
        assert text and "\n" not in text and len(text) <= 200


def test_every_captured_failure_log_is_checked() -> None:
    assert {p.name for p in FAILURES.glob("*.log")} == set(FAILURE_LOGS)


def test_a_full_training_log_names_the_missing_dataset_file() -> None:
    # The real axolotl run: hundreds of ordinary lines, then the traceback.
    best = scan(read_lines(FAILURES / "dataset_missing_train.log")).best
    assert best is not None and "/data/missing/train.jsonl" in best.cause


def test_a_training_that_filled_the_disk_points_at_the_disk() -> None:
    # torch 2.13 never says "No space left" when a checkpoint meets a full disk.
    lines = read_lines(FAILURES / "disk_full_train.log")
    assert not any("No space left" in line for line in lines)
    assert any("Saving model checkpoint" in line for line in lines)
    best = scan(lines).best
    assert best is not None and best.key == "disk_full" and "full disk" in best.cause


def test_a_warning_about_an_optional_module_does_not_hide_a_later_oom() -> None:
    # Libraries log optional imports that fail; the error that ended the run is more specific.
    scanner = scan(
        [
            "[transformers] Encountered exception while importing xformers: No module named "
            "'xformers'",
            "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a "
            "total capacity of 79.19 GiB of which 1.06 GiB is free.",
        ]
    )
    assert scanner.best is not None and scanner.best.key == "cuda_oom"


def test_the_memory_error_outranks_the_kill_that_follows() -> None:
    scanner = scan(["MemoryError", "  exitcode  : -9 (pid: 16563)  (SIGKILL)"])
    assert scanner.best is not None and scanner.best.key == "host_oom"


def test_shared_memory_is_named_before_the_disk() -> None:
    # The same line says "No space left on device": /dev/shm, not the disk, needs room.
    hint = hint_for_line(
        "RuntimeError: unable to allocate shared memory(shm) for file </torch_1_2_0>: No space "
        "left on device (28)"
    )
    assert hint is not None and hint.key == "shm_full"


def test_an_exit_by_sigkill_alone_hints_at_the_oom_killer() -> None:
    # A killed training leaves no line of its own when the supervisor started it directly.
    hint = hint_for_exit_code(-9)
    assert hint is not None and hint.key == "killed_oom" and "OOM" in hint.cause
    assert all(hint_for_exit_code(code) is None for code in (0, 1, 2, 137, -6, -15))
    scanner = FailureScanner()
    assert scanner.feed_exit(-9) == hint and scanner.best == hint
    scanner = FailureScanner()
    scanner.feed("MemoryError")
    scanner.feed_exit(-9)
    assert scanner.best is not None and scanner.best.key == "host_oom"
    scanner = FailureScanner()
    assert scanner.feed_exit(1) is None and scanner.best is None


def test_captured_urls_lose_credentials_and_query() -> None:
    hint = hint_for_line(
        "ValueError: The dataset could not be loaded. This could be due to a misconfigured "
        "dataset path (https://user:s3cr3t@example.invalid/d.jsonl?X-Amz-Signature=abc123). Try "
        "double-check your path / name / data_files."
    )
    assert hint is not None and hint.key == "dataset_missing"
    assert "example.invalid/d.jsonl" in hint.cause
    assert "s3cr3t" not in hint.cause and "abc123" not in hint.cause and "user" not in hint.cause


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


ALL_LOGS = sorted([*DISTRIBUTED.glob("*.log"), *FAILURES.glob("*.log")])


@pytest.mark.parametrize("path", ALL_LOGS, ids=lambda path: path.name)
def test_feeding_lines_together_gives_what_feeding_them_one_by_one_gives(path: Path) -> None:
    lines = read_lines(path)
    one_by_one = scan(lines)
    together = FailureScanner()
    # In the batches the supervisor makes (one per read), coloured lines among them.
    for start in range(0, len(lines), 7):
        batch = lines[start : start + 7]
        together.feed_lines([f"\x1b[31m{line}\x1b[0m" if start % 2 else line for line in batch])
    assert together.best == one_by_one.best
    assert together.best is not None


def test_lines_fed_together_without_a_needle_give_no_hint() -> None:
    scanner = FailureScanner()
    scanner.feed_lines(read_lines(FIXTURES / "axolotl_demo_run.log"))
    scanner.feed_lines([])
    assert scanner.best is None


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
        "Killed 3 stale processes before the start",
        "[INFO] the scheduler Killed nothing",
        "MemoryErrorHandler installed",
        "memory/max_active (GiB): 0",
        "Unable to allocate a port, retrying",
        "a module named 'yaml' was found",
        "loaded 3 paths: require no network",
        "DataLoader worker (pid 12) exited normally",
    ],
)
def test_lines_that_only_look_alike_give_no_hint(line: str) -> None:
    assert hint_for_line(line) is None


def test_handmade_failure_points_at_the_failed_child() -> None:
    best = scan(read_lines(FIXTURES / "handmade_failure.log")).best
    assert best is not None and best.key == "child_failed"
    assert "code 1" in best.cause


NEEDLES = sorted({rule.needle for rule in failure_hints._RULES})


@given(
    st.lists(
        st.one_of(st.sampled_from(NEEDLES), st.text(max_size=20)),
        max_size=6,
    ).map("".join)
)
def test_the_prefilter_finds_exactly_the_lines_holding_a_needle(text: str) -> None:
    # The prefilter is one trie-shaped regex; it must agree with a plain search for each needle.
    expected = any(needle in text for needle in NEEDLES)
    assert (failure_hints._PREFILTER.search(text) is not None) == expected


@given(st.text(max_size=300))
def test_any_text_gives_a_well_formed_hint_or_none(text: str) -> None:
    hint = hint_for_line(text)
    assert hint is None or (isinstance(hint, FailureHint) and hint.key in KEYS)
    if hint is not None:
        assert "\n" not in hint.cause and "\n" not in hint.fix


# End to end: a real supervisor runs a tiny python child that really fails; status.json and the
# headless summary carry the cause and fix.
CHILD_FAILURES = {
    "package_missing": ("import no_such_module_xyz\n", "no_such_module_xyz", "pip install"),
    # A 1 GiB address space: python starts, the 8 GiB buffer fails with a real MemoryError.
    "host_oom": (
        "import resource\n"
        "resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))\n"
        "print('allocating', flush=True)\n"
        "bytearray(8 << 30)\n",
        "RAM",
        "micro_batch_size",
    ),
}


def supervise(root: Path, code: str) -> RunPaths:
    paths = RunPaths(root)
    root.mkdir(parents=True)
    write_json_atomic(paths.command, {"argv": [sys.executable, "-c", code], "cwd": str(root)})
    # The supervisor exits with the training's code; the outcome is read from status.json.
    subprocess.run(
        [sys.executable, "-m", "vlm_tui.core.supervise.supervisor", str(root)],
        env=clean_environ(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=120,
        check=False,
    )
    return paths


@pytest.mark.parametrize("key", sorted(CHILD_FAILURES))
def test_supervisor_records_cause_and_fix_of_a_real_failure(tmp_path: Path, key: str) -> None:
    code, in_cause, in_fix = CHILD_FAILURES[key]
    paths = supervise(tmp_path / "runs" / key, code)
    status = read_json(paths.status)
    assert status is not None
    assert status["state"] == "failed" and status["exit_code"] == 1
    assert status["hint"] == key
    assert in_cause in status["cause"] and in_fix in status["fix"]
    assert "\n" not in status["cause"] and "\n" not in status["fix"]
    # The child's own error is in train.log, where the scanner read it.
    assert ("ModuleNotFoundError" if key == "package_missing" else "MemoryError") in (
        paths.log.read_text()
    )
    # status.json is plain JSON a front-end reads as is.
    assert json.loads(paths.status.read_text())["cause"] == status["cause"]
    lines = summary_lines(paths, RunState(), status)
    assert f"[vlm-tui] cause: {status['cause']}" in lines
    assert f"[vlm-tui] fix: {status['fix']}" in lines


def test_supervisor_writes_no_cause_for_a_failure_it_does_not_know(tmp_path: Path) -> None:
    paths = supervise(tmp_path / "runs" / "plain", "raise SystemExit(3)\n")
    status = read_json(paths.status)
    assert status is not None and status["state"] == "failed" and status["exit_code"] == 3
    assert "cause" not in status and "fix" not in status
    assert not [line for line in summary_lines(paths, RunState(), status) if "cause:" in line]


def test_a_training_killed_outright_gets_the_oom_killer_cause(tmp_path: Path) -> None:
    # What the kernel's OOM killer does to the training: SIGKILL, with nothing printed.
    paths = supervise(tmp_path / "runs" / "killed", "import os, signal\nos.kill(os.getpid(), 9)\n")
    status = read_json(paths.status)
    assert status is not None and status["state"] == "failed" and status["exit_code"] == -9
    assert status["hint"] == "killed_oom"
    assert status["cause"] and status["fix"]
