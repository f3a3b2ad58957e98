"""What accelerators this node has, read through NVML without importing torch.

NVML is the driver's own library (module `pynvml` from nvidia-ml-py). It is loaded lazily and
every failure means "no NVIDIA GPU here", never an exception: most of our tests and the demo run
on machines without a driver.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Hardware:
    gpu_names: tuple[str, ...] = ()
    # The lowest CUDA compute capability among the visible GPUs, e.g. (8, 0) for an A100.
    min_compute_capability: tuple[int, int] | None = None
    # Why there are no GPUs, shown to the user ("no NVIDIA driver found", ...).
    note: str = ""

    @property
    def gpu_count(self) -> int:
        return len(self.gpu_names)

    @property
    def supports_bf16(self) -> bool:
        # bf16 tensor cores arrived with Ampere (compute capability 8.0).
        capability = self.min_compute_capability
        return capability is not None and capability >= (8, 0)


CPU_ONLY = Hardware(note="no GPU: training runs on the CPU")


def visible_gpu_indices(environ: Mapping[str, str], physical_count: int) -> list[int]:
    """The physical GPUs CUDA_VISIBLE_DEVICES lets the training see (all when unset)."""
    raw = environ.get("CUDA_VISIBLE_DEVICES")
    if raw is None:
        return list(range(physical_count))
    visible: list[int] = []
    for item in raw.split(","):
        item = item.strip()
        # CUDA stops at the first entry it cannot use; UUIDs are resolved by the caller.
        if not item.isdigit() or int(item) >= physical_count:
            break
        visible.append(int(item))
    return visible


def probe_hardware(environ: Mapping[str, str]) -> Hardware:
    """Ask NVML which GPUs exist; any failure gives CPU_ONLY with the reason in `note`."""
    try:
        import pynvml
    except ImportError:
        return Hardware(note="nvidia-ml-py is not installed: assuming no GPU")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as error:
        return Hardware(note=f"no NVIDIA driver found ({error}): training runs on the CPU")
    try:
        indices = visible_gpu_indices(environ, pynvml.nvmlDeviceGetCount())
        names: list[str] = []
        capabilities: list[tuple[int, int]] = []
        for index in indices:
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            name = pynvml.nvmlDeviceGetName(handle)
            names.append(name.decode() if isinstance(name, bytes) else str(name))
            major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(handle)
            capabilities.append((int(major), int(minor)))
    except pynvml.NVMLError as error:
        return Hardware(note=f"NVML query failed ({error}): assuming no GPU")
    finally:
        with contextlib.suppress(pynvml.NVMLError):
            pynvml.nvmlShutdown()
    if not names:
        return Hardware(note="no GPU visible (CUDA_VISIBLE_DEVICES): training runs on the CPU")
    return Hardware(gpu_names=tuple(names), min_compute_capability=min(capabilities))
