"""Live GPU and host readings for the monitor, read through NVML and psutil (no UI here).

NVML (module `pynvml` from nvidia-ml-py, the official bindings) is imported and initialised
lazily and only once: on a machine without a driver the first attempt leaves a note and we never
try again every second. Every query fails soft, so an unsupported or failing reading is `None`,
never an exception that could take the monitor down.

NVML calls take the driver's global lock, which the training processes also need. So a
`Telemetry` answers from its cache when asked again within about `min_interval_s` (one second
by default) and only queries what the panel shows: utilisation (~2.5 us), memory (~12 us),
temperature and power. The running-process list (~4.5 ms) is deliberately not read here; it
belongs in its own query group, asked for only when shown.

Each query group is its own method (`_read_gpus`, `_read_host`), so later groups (per-process GPU
memory, network throughput, recording samples to a file) slot in beside them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import psutil

_T = TypeVar("_T")

_MIB = 1024 * 1024
# A caller's one-second timer fires a little early relative to the previous read now and then;
# without some slack every other tick would get the cached sample and the display would
# refresh only every two seconds.
_INTERVAL_SLACK = 0.9
# NVML error codes that mean "there is no usable driver here" rather than "NVML broke".
_NVML_ERROR_DRIVER_NOT_LOADED = 9
_NVML_ERROR_LIBRARY_NOT_FOUND = 12


@dataclass(frozen=True)
class GpuSample:
    """One GPU at one moment; a field is None when the driver could not or would not say."""

    index: int  # NVML's physical index, not the CUDA_VISIBLE_DEVICES-renumbered one
    name: str
    utilization_pct: float | None
    memory_used_mib: float | None
    memory_total_mib: float | None
    temperature_c: float | None
    power_w: float | None
    power_limit_w: float | None


@dataclass(frozen=True)
class HostSample:
    """The node's CPU and RAM at one moment; None when psutil could not read them."""

    # None on the first sample: a CPU percentage needs two readings to compare.
    cpu_pct: float | None
    ram_used_mib: float | None
    ram_total_mib: float | None


@dataclass(frozen=True)
class TelemetrySample:
    time: float  # the Telemetry clock's reading (monotonic by default), not wall time
    gpus: tuple[GpuSample, ...]
    host: HostSample
    # Empty when the GPUs were read; otherwise one plain sentence saying why there are none.
    gpu_note: str


def _soft(query: Callable[[], _T]) -> _T | None:
    """Run one reading, giving None instead of an exception."""
    try:
        return query()
    # NVML raises NVMLError subclasses, but an old driver or a lost GPU can also surface as
    # ctypes or OS errors; a monitor must never crash for a reading it could not take.
    except Exception:
        return None


def _text(value: object) -> str:
    # Older bindings return the device name as bytes, newer ones as str.
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


class Telemetry:
    """Samples the node's GPUs (NVML) and host (psutil); safe to call from a worker thread."""

    def __init__(
        self,
        nvml: Any | None = None,
        clock: Callable[[], float] = time.monotonic,
        min_interval_s: float = 1.0,
    ) -> None:
        # None: import pynvml on the first sample; tests pass a stand-in module object.
        self._nvml: Any = nvml
        self._clock = clock
        self._min_interval_s = min_interval_s
        # sample() runs in a worker thread while close() may come from the UI thread.
        self._lock = threading.Lock()
        self._nvml_tried = False
        self._nvml_initialised = False
        self._gpu_note = ""
        self._devices: tuple[tuple[int, Any, str], ...] = ()
        self._last: TelemetrySample | None = None
        # Our own CPU-time baseline: psutil.cpu_percent(interval=None) keeps its baseline per
        # thread, and worker threads come from a pool, so its readings would be meaningless.
        self._last_cpu_times: tuple[float, float] | None = None

    def sample(self) -> TelemetrySample:
        """The current readings, or the cached ones when asked again within ~min_interval_s."""
        with self._lock:
            now = self._clock()
            last = self._last
            if last is not None and now - last.time < self._min_interval_s * _INTERVAL_SLACK:
                return last
            if not self._nvml_tried:
                self._open_nvml()
            sample = TelemetrySample(
                time=now, gpus=self._read_gpus(), host=self._read_host(), gpu_note=self._gpu_note
            )
            self._last = sample
            return sample

    def close(self) -> None:
        """Release NVML if we initialised it; safe to call twice. A later sample reopens it."""
        with self._lock:
            if self._nvml_initialised:
                nvml = self._nvml
                _soft(nvml.nvmlShutdown)
                self._nvml_initialised = False
                # Only a successful start is retried; a missing driver stays remembered.
                self._nvml_tried = False
                self._devices = ()
            self._last = None

    def _open_nvml(self) -> None:
        """Initialise NVML once and list the GPUs; on failure keep a note instead."""
        self._nvml_tried = True
        nvml = self._nvml
        if nvml is None:
            try:
                import pynvml
            except ImportError:
                self._gpu_note = "nvidia-ml-py is not installed"
                return
            nvml = self._nvml = pynvml
        try:
            nvml.nvmlInit()
        except Exception as error:
            code = getattr(error, "value", None)
            if code in (_NVML_ERROR_LIBRARY_NOT_FOUND, _NVML_ERROR_DRIVER_NOT_LOADED):
                self._gpu_note = f"no NVIDIA driver found ({error})"
            else:
                self._gpu_note = f"NVML did not start ({error})"
            return
        self._nvml_initialised = True
        try:
            # The set of GPUs is fixed while NVML is initialised, so handles and names are kept.
            devices: list[tuple[int, Any, str]] = []
            for index in range(int(nvml.nvmlDeviceGetCount())):
                handle = nvml.nvmlDeviceGetHandleByIndex(index)
                devices.append((index, handle, self._name(handle) or f"GPU {index}"))
        except Exception as error:
            self._gpu_note = f"NVML could not list the GPUs ({error})"
            return
        self._devices = tuple(devices)
        self._gpu_note = "" if devices else "NVML reports no GPU on this node"

    def _name(self, handle: Any) -> str | None:
        nvml = self._nvml
        return _soft(lambda: _text(nvml.nvmlDeviceGetName(handle)))

    def _read_gpus(self) -> tuple[GpuSample, ...]:
        """Utilisation, memory, temperature and power of every GPU (cheap NVML queries only)."""
        if not self._nvml_initialised:
            return ()
        return tuple(self._read_gpu(*device) for device in self._devices)

    def _read_gpu(self, index: int, handle: Any, name: str) -> GpuSample:
        nvml = self._nvml
        sensor = getattr(nvml, "NVML_TEMPERATURE_GPU", 0)
        memory = _soft(lambda: nvml.nvmlDeviceGetMemoryInfo(handle))
        return GpuSample(
            index=index,
            name=name,
            utilization_pct=_soft(lambda: float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)),
            memory_used_mib=None if memory is None else _soft(lambda: memory.used / _MIB),
            memory_total_mib=None if memory is None else _soft(lambda: memory.total / _MIB),
            temperature_c=_soft(lambda: float(nvml.nvmlDeviceGetTemperature(handle, sensor))),
            # NVML reports power in milliwatts.
            power_w=_soft(lambda: nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0),
            power_limit_w=_soft(lambda: nvml.nvmlDeviceGetEnforcedPowerLimit(handle) / 1000.0),
        )

    def _read_host(self) -> HostSample:
        """CPU use since the previous sample and RAM in use, without blocking."""
        memory = _soft(psutil.virtual_memory)
        return HostSample(
            cpu_pct=self._cpu_pct(),
            # total - available is what the kernel cannot reclaim; psutil's own `used` is
            # computed differently on each platform.
            ram_used_mib=None if memory is None else (memory.total - memory.available) / _MIB,
            ram_total_mib=None if memory is None else memory.total / _MIB,
        )

    def _cpu_pct(self) -> float | None:
        times = _soft(psutil.cpu_times)
        if times is None:
            return None
        fields: dict[str, float] = times._asdict()
        # Linux already counts guest time inside user and nice.
        total = sum(v for k, v in fields.items() if k not in ("guest", "guest_nice"))
        busy = total - fields.get("idle", 0.0) - fields.get("iowait", 0.0)
        previous, self._last_cpu_times = self._last_cpu_times, (busy, total)
        if previous is None or total <= previous[1]:
            return None
        percent = (busy - previous[0]) / (total - previous[1]) * 100.0
        return min(max(percent, 0.0), 100.0)
