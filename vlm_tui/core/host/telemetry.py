"""Live GPU and host readings for the monitor, read through NVML and psutil (no UI here).

NVML (module `pynvml` from nvidia-ml-py, the official bindings) is imported and initialised
lazily and only once: on a machine without a driver the first attempt leaves a note and we never
try again every second. Every query fails soft, so an unsupported or failing reading is `None`,
never an exception that could take the monitor down.

NVML calls take the driver's global lock, which the training processes also need. So a
`Telemetry` answers from its cache when asked again within about `min_interval_s` (one second
by default) and only queries what the panel shows: utilisation (~2.5 us), memory (~12 us),
temperature and power. The running-process list (~4.5 ms) is not part of `sample()`: it is its
own query group, `process_tree()`, which only the node's recorder asks for (at most once a
second, in the supervisor).

Each query group is its own method with its own cache: `sample()` (GPUs and host, what the GPU
panel shows), `network()` (bytes per second over the non-loopback interfaces) and
`process_tree(pids)` (CPU, RSS and GPU memory of the run's own processes).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection
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
class NetworkSample:
    """Bytes per second received and sent over every non-loopback interface, summed.

    None on the first reading (a rate needs two) and when psutil could not read the counters.
    """

    time: float
    rx_bytes_per_s: float | None
    tx_bytes_per_s: float | None


@dataclass(frozen=True)
class ProcessTreeSample:
    """The run's own processes: how many, their CPU and resident memory, their GPU memory."""

    time: float
    processes: int
    # Summed over the processes, 100 per busy core (as top shows it); None on the first reading.
    cpu_pct: float | None
    # Summed RSS: pages shared between forked workers count once per process.
    rss_mib: float | None
    # (NVML GPU index, MiB the processes hold there) for each GPU whose process list was read.
    # NVML reports host pids: inside a container with its own pid namespace nothing matches.
    gpu_memory_mib: tuple[tuple[int, float], ...]


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
        self._last_network: NetworkSample | None = None
        # Byte counters per interface at the previous network reading, and when it was taken.
        self._net_counters: dict[str, tuple[int, int]] | None = None
        self._last_tree: ProcessTreeSample | None = None
        # The run's processes as last read: psutil objects (their start time guards against a
        # reused pid) and the CPU seconds each had used, for the next reading's difference.
        self._tree: dict[int, tuple[psutil.Process, float]] = {}

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

    def _fresh(self, last: NetworkSample | ProcessTreeSample | None, now: float) -> bool:
        return last is not None and now - last.time < self._min_interval_s * _INTERVAL_SLACK

    def network(self) -> NetworkSample:
        """Receive and send rates since the previous reading (cached like `sample()`)."""
        with self._lock:
            now = self._clock()
            if self._fresh(self._last_network, now):
                assert self._last_network is not None
                return self._last_network
            sample = self._read_network(now)
            self._last_network = sample
            return sample

    def process_tree(self, pids: Collection[int]) -> ProcessTreeSample:
        """CPU, RSS and GPU memory of the processes `pids` (cached like `sample()`).

        The GPU part reads NVML's running-process list (~4.5 ms a GPU), so only a caller that
        records it asks for this group.
        """
        with self._lock:
            now = self._clock()
            if self._fresh(self._last_tree, now):
                assert self._last_tree is not None
                return self._last_tree
            if not self._nvml_tried:
                self._open_nvml()
            sample = self._read_tree(now, set(pids))
            self._last_tree = sample
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
            self._last_network = None
            self._last_tree = None

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

    def _read_network(self, now: float) -> NetworkSample:
        """Rates from the per-interface byte counters; loopback traffic is not the network."""
        counters = _soft(lambda: psutil.net_io_counters(pernic=True))
        if counters is None:
            self._net_counters = None
            return NetworkSample(time=now, rx_bytes_per_s=None, tx_bytes_per_s=None)
        current = {
            name: (int(counter.bytes_recv), int(counter.bytes_sent))
            for name, counter in counters.items()
            if not _is_loopback(name)
        }
        previous, self._net_counters = self._net_counters, current
        last = self._last_network
        if previous is None or last is None or now <= last.time:
            return NetworkSample(time=now, rx_bytes_per_s=None, tx_bytes_per_s=None)
        received = sent = 0
        # Interfaces that came or went in between, and counters that wrapped, are left out.
        for name, (rx, tx) in current.items():
            if name in previous:
                received += max(rx - previous[name][0], 0)
                sent += max(tx - previous[name][1], 0)
        elapsed = now - last.time
        return NetworkSample(
            time=now, rx_bytes_per_s=received / elapsed, tx_bytes_per_s=sent / elapsed
        )

    def _read_tree(self, now: float, pids: set[int]) -> ProcessTreeSample:
        """CPU seconds and RSS per process; the CPU share from the difference to last time."""
        previous = self._tree
        current: dict[int, tuple[psutil.Process, float]] = {}
        used = 0.0
        rss = 0
        continued = 0
        for pid in sorted(pids):
            reading = self._read_process(previous.get(pid), pid)
            if reading is None:
                continue
            process, cpu_s, rss_bytes = reading
            if pid in previous and previous[pid][0] is process:
                used += max(cpu_s - previous[pid][1], 0.0)
                continued += 1
            current[pid] = (process, cpu_s)
            rss += rss_bytes
        self._tree = current
        last = self._last_tree
        cpu_pct = None
        # Only processes read both times have a difference; a new one counts from next time.
        if last is not None and now > last.time and continued:
            cpu_pct = used / (now - last.time) * 100.0
        return ProcessTreeSample(
            time=now,
            processes=len(current),
            cpu_pct=cpu_pct,
            rss_mib=rss / _MIB if current else None,
            gpu_memory_mib=self._read_process_gpu_memory(set(current)),
        )

    @staticmethod
    def _read_process(
        known: tuple[psutil.Process, float] | None, pid: int
    ) -> tuple[psutil.Process, float, int] | None:
        """(process, CPU seconds, RSS bytes), or None once it is gone or unreadable."""
        try:
            process = known[0] if known is not None and known[0].is_running() else None
            process = process or psutil.Process(pid)
            with process.oneshot():
                times = process.cpu_times()
                memory = process.memory_info()
        except psutil.Error:
            return None
        # Children are counted as processes of their own, so their times are not added here.
        return process, float(times.user + times.system), int(memory.rss)

    def _read_process_gpu_memory(self, pids: set[int]) -> tuple[tuple[int, float], ...]:
        """MiB each GPU holds for `pids`, from NVML's list of compute processes per GPU."""
        if not self._nvml_initialised or not pids:
            return ()
        held: list[tuple[int, float]] = []
        for index, handle, _name in self._devices:
            running = self._running_processes(handle)
            if running is None:
                continue
            total = 0
            for process in running:
                # usedGpuMemory is None where the driver cannot say (Windows WDDM).
                memory = getattr(process, "usedGpuMemory", None)
                if getattr(process, "pid", None) in pids and isinstance(memory, int):
                    total += memory
            held.append((index, total / _MIB))
        return tuple(held)

    def _running_processes(self, handle: Any) -> list[Any] | None:
        nvml = self._nvml
        return _soft(lambda: list(nvml.nvmlDeviceGetComputeRunningProcesses(handle)))


def _is_loopback(interface: str) -> bool:
    # Linux names it lo, the BSDs and macOS lo0.
    return interface == "lo" or (interface.startswith("lo") and interface[2:].isdigit())
