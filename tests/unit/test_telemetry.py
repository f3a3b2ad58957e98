"""Telemetry reads GPUs through NVML softly: bad readings are None, a missing driver is a note.

Most tests use a stand-in NVML module so they run anywhere; one reads this machine for real.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import namedtuple
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from vlm_tui.core.host import telemetry as telemetry_module
from vlm_tui.core.host.telemetry import Telemetry

GIB = 1024**3


class FakeNVMLError(Exception):
    """Stands in for pynvml.NVMLError."""


class FakeNVML:
    """The few NVML calls Telemetry makes, with counters and switchable failures."""

    NVMLError = FakeNVMLError
    NVML_TEMPERATURE_GPU = 0

    def __init__(self, names: tuple[str | bytes, ...] = ("NVIDIA H100 80GB HBM3",)) -> None:
        self.names = names
        self.init_error: Exception | None = None
        self.failing: set[str] = set()
        self.calls: dict[str, int] = {}
        # Per GPU handle: (pid, bytes of GPU memory or None) of each compute process on it.
        self.processes: dict[int, list[tuple[int, int | None]]] = {}
        self.failing_handles: frozenset[int] = frozenset()

    def _call(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1
        if name in self.failing:
            raise FakeNVMLError("Not Supported")

    def nvmlInit(self) -> None:
        self._call("nvmlInit")
        if self.init_error is not None:
            raise self.init_error

    def nvmlShutdown(self) -> None:
        self._call("nvmlShutdown")

    def nvmlDeviceGetCount(self) -> int:
        self._call("nvmlDeviceGetCount")
        return len(self.names)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        self._call("nvmlDeviceGetHandleByIndex")
        return index

    def nvmlDeviceGetName(self, handle: int) -> str | bytes:
        self._call("nvmlDeviceGetName")
        return self.names[handle]

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> Any:
        self._call("nvmlDeviceGetUtilizationRates")
        return SimpleNamespace(gpu=87 + handle, memory=40)

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> Any:
        self._call("nvmlDeviceGetMemoryInfo")
        return SimpleNamespace(used=40 * GIB, total=80 * GIB, free=40 * GIB)

    def nvmlDeviceGetTemperature(self, handle: int, sensor: int) -> int:
        self._call("nvmlDeviceGetTemperature")
        assert sensor == self.NVML_TEMPERATURE_GPU
        return 65

    def nvmlDeviceGetPowerUsage(self, handle: int) -> int:
        self._call("nvmlDeviceGetPowerUsage")
        return 310_500  # milliwatts

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: int) -> int:
        self._call("nvmlDeviceGetEnforcedPowerLimit")
        return 700_000  # milliwatts

    def nvmlDeviceGetComputeRunningProcesses(self, handle: int) -> list[Any]:
        self._call("nvmlDeviceGetComputeRunningProcesses")
        if handle in self.failing_handles:
            raise FakeNVMLError("GPU is lost")
        return [
            SimpleNamespace(pid=pid, usedGpuMemory=memory)
            for pid, memory in self.processes.get(handle, [])
        ]


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_readings_are_converted_to_mib_watts_and_percent() -> None:
    nvml = FakeNVML(names=("NVIDIA H100 80GB HBM3", b"NVIDIA A100-SXM4-40GB"))
    sample = Telemetry(nvml=nvml).sample()

    assert sample.gpu_note == ""
    assert [gpu.index for gpu in sample.gpus] == [0, 1]
    first, second = sample.gpus
    # Names come back as str whether the bindings give str or bytes.
    assert first.name == "NVIDIA H100 80GB HBM3"
    assert second.name == "NVIDIA A100-SXM4-40GB"
    assert first.utilization_pct == 87.0
    assert second.utilization_pct == 88.0
    assert first.memory_used_mib == 40 * 1024
    assert first.memory_total_mib == 80 * 1024
    assert first.temperature_c == 65.0
    assert first.power_w == pytest.approx(310.5)
    assert first.power_limit_w == pytest.approx(700.0)


def test_one_failing_query_gives_none_for_that_field_only() -> None:
    nvml = FakeNVML()
    nvml.failing = {"nvmlDeviceGetPowerUsage"}
    (gpu,) = Telemetry(nvml=nvml).sample().gpus

    assert gpu.power_w is None
    assert gpu.power_limit_w == pytest.approx(700.0)
    assert gpu.utilization_pct == 87.0
    assert gpu.memory_used_mib == 40 * 1024
    assert gpu.temperature_c == 65.0


def test_failing_memory_query_leaves_both_memory_fields_none() -> None:
    nvml = FakeNVML()
    nvml.failing = {"nvmlDeviceGetMemoryInfo", "nvmlDeviceGetName"}
    (gpu,) = Telemetry(nvml=nvml).sample().gpus

    assert gpu.memory_used_mib is None
    assert gpu.memory_total_mib is None
    assert gpu.name == "GPU 0"
    assert gpu.utilization_pct == 87.0


def test_init_failure_gives_a_note_and_is_not_retried() -> None:
    nvml = FakeNVML()
    nvml.init_error = FakeNVMLError("Driver Not Loaded")
    clock = FakeClock()
    telemetry = Telemetry(nvml=nvml, clock=clock)

    first = telemetry.sample()
    clock.now += 5.0
    second = telemetry.sample()

    assert first.gpus == () and second.gpus == ()
    assert "Driver Not Loaded" in first.gpu_note
    assert second.gpu_note == first.gpu_note
    assert second.time > first.time  # a fresh sample, yet NVML was not asked again
    assert nvml.calls["nvmlInit"] == 1
    assert "nvmlDeviceGetCount" not in nvml.calls
    # Nothing was initialised, so there is nothing to shut down.
    telemetry.close()
    assert "nvmlShutdown" not in nvml.calls


def test_failure_to_list_gpus_gives_a_note() -> None:
    nvml = FakeNVML()
    nvml.failing = {"nvmlDeviceGetCount"}
    sample = Telemetry(nvml=nvml).sample()

    assert sample.gpus == ()
    assert "Not Supported" in sample.gpu_note


def test_sample_is_cached_within_the_interval() -> None:
    nvml = FakeNVML()
    clock = FakeClock()
    telemetry = Telemetry(nvml=nvml, clock=clock, min_interval_s=1.0)

    first = telemetry.sample()
    clock.now += 0.5
    assert telemetry.sample() is first
    assert nvml.calls["nvmlDeviceGetUtilizationRates"] == 1

    clock.now += 0.6
    later = telemetry.sample()
    assert later is not first
    assert later.time == pytest.approx(101.1)
    assert nvml.calls["nvmlDeviceGetUtilizationRates"] == 2
    # A once-a-second timer that fires a touch early still gets fresh readings.
    clock.now += 0.95
    assert telemetry.sample() is not later
    # Init and the device list happen once, not on every sample.
    assert nvml.calls["nvmlInit"] == 1
    assert nvml.calls["nvmlDeviceGetCount"] == 1


def test_close_is_idempotent_and_shuts_nvml_down_once() -> None:
    nvml = FakeNVML()
    telemetry = Telemetry(nvml=nvml)
    telemetry.close()  # before any sample: nothing to do
    assert "nvmlShutdown" not in nvml.calls

    telemetry.sample()
    telemetry.close()
    telemetry.close()
    assert nvml.calls["nvmlShutdown"] == 1


def test_cpu_percent_compares_with_the_previous_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    times = namedtuple("times", "user nice system idle iowait guest")
    readings = iter([times(10, 0, 10, 80, 0, 5), times(40, 0, 20, 140, 0, 9)])
    monkeypatch.setattr(telemetry_module.psutil, "cpu_times", lambda: next(readings))
    clock = FakeClock()
    telemetry = Telemetry(nvml=FakeNVML(), clock=clock)

    # The first sample has nothing to compare with.
    assert telemetry.sample().host.cpu_pct is None
    clock.now += 1.0
    # 40 busy out of 100 elapsed; guest time is already inside user time.
    assert telemetry.sample().host.cpu_pct == pytest.approx(40.0)


def test_real_telemetry_on_this_machine() -> None:
    """The real path, no stand-in: without a driver there is a note, with one there are GPUs."""
    telemetry = Telemetry()
    try:
        sample = telemetry.sample()
    finally:
        telemetry.close()

    assert sample.gpus or sample.gpu_note
    if not sample.gpus:
        assert sample.gpu_note.strip()
    assert sample.host.ram_total_mib is not None and sample.host.ram_total_mib > 0
    assert sample.host.ram_used_mib is not None
    assert 0 <= sample.host.ram_used_mib <= sample.host.ram_total_mib


# ---- the network and the run's processes ------------------------------------------------

Counters = namedtuple("Counters", "bytes_sent bytes_recv")


def test_network_rates_sum_the_interfaces_but_not_loopback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    readings = iter(
        [
            {"lo": Counters(0, 0), "eth0": Counters(1_000, 5_000), "ib0": Counters(0, 0)},
            # eth0 and ib0 move; loopback traffic (a local rendezvous) is not the network.
            {
                "lo": Counters(9_000_000, 9_000_000),
                "eth0": Counters(3_000, 9_000),
                "ib0": Counters(2_000, 4_000),
            },
            # ib0 went away, docker0 came: only interfaces read both times count.
            {"eth0": Counters(3_500, 9_000), "docker0": Counters(70_000, 70_000)},
        ]
    )
    monkeypatch.setattr(
        telemetry_module.psutil, "net_io_counters", lambda pernic=False: next(readings)
    )
    clock = FakeClock()
    telemetry = Telemetry(nvml=FakeNVML(), clock=clock)

    first = telemetry.network()
    assert (first.rx_bytes_per_s, first.tx_bytes_per_s) == (None, None)
    clock.now += 2.0
    second = telemetry.network()
    assert second.rx_bytes_per_s == pytest.approx((4_000 + 4_000) / 2)
    assert second.tx_bytes_per_s == pytest.approx((2_000 + 2_000) / 2)
    # Asked again within the interval: the same reading, the counters are not read again.
    clock.now += 0.5
    assert telemetry.network() is second
    clock.now += 0.5
    third = telemetry.network()
    assert third.rx_bytes_per_s == 0.0
    assert third.tx_bytes_per_s == pytest.approx(500.0)


def test_unreadable_network_counters_give_none(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(pernic: bool = False) -> dict[str, Any]:
        raise OSError("no /proc/net/dev")

    monkeypatch.setattr(telemetry_module.psutil, "net_io_counters", broken)
    sample = Telemetry(nvml=FakeNVML()).network()
    assert sample.rx_bytes_per_s is None and sample.tx_bytes_per_s is None


def test_real_network_counters_give_rates_from_the_second_reading() -> None:
    clock = FakeClock()
    telemetry = Telemetry(nvml=FakeNVML(), clock=clock)
    telemetry.network()
    clock.now += 1.0
    sample = telemetry.network()
    assert sample.rx_bytes_per_s is not None and sample.rx_bytes_per_s >= 0
    assert sample.tx_bytes_per_s is not None and sample.tx_bytes_per_s >= 0


@pytest.fixture
def busy_and_idle() -> Iterator[tuple[subprocess.Popen[bytes], subprocess.Popen[bytes]]]:
    """Two real processes: one spinning on a core, one asleep."""
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        yield busy, idle
    finally:
        for process in (busy, idle):
            process.kill()
            process.wait()


def test_process_tree_reads_cpu_and_rss_of_real_processes(
    busy_and_idle: tuple[subprocess.Popen[bytes], subprocess.Popen[bytes]],
) -> None:
    busy, idle = busy_and_idle
    telemetry = Telemetry(nvml=FakeNVML(), min_interval_s=0.0)
    gone = 2**22 + 1  # above Linux's largest pid: never a process
    pids = {busy.pid, idle.pid, gone}

    first = telemetry.process_tree(pids)
    assert first.processes == 2  # the pid that does not exist is left out
    assert first.cpu_pct is None  # nothing to compare with yet
    assert first.rss_mib is not None and first.rss_mib > 1
    time.sleep(0.5)
    second = telemetry.process_tree(pids)
    assert second.cpu_pct is not None and second.cpu_pct > 0
    # Only the spinning one works: one core's worth, not two (CPU times come in clock ticks,
    # so over half a second on a loaded machine the figure can stray a few percent over 100).
    assert second.cpu_pct < 150
    assert telemetry.process_tree({idle.pid}).processes == 1


def test_process_tree_counts_gpu_memory_of_its_own_processes_only() -> None:
    nvml = FakeNVML(names=("NVIDIA H100 80GB HBM3", "NVIDIA H100 80GB HBM3", "NVIDIA L4"))
    own = os.getpid()
    nvml.processes = {
        0: [(own, 3 * GIB), (1, 7 * GIB)],  # pid 1 is not the run's
        1: [(own, None)],  # the driver would not say
    }
    nvml.failing_handles = frozenset({2})
    tree = Telemetry(nvml=nvml).process_tree({own})

    # GPU 2's list could not be read, so it is left out rather than reported as 0.
    assert tree.gpu_memory_mib == ((0, 3 * 1024.0), (1, 0.0))


def test_process_tree_without_a_driver_has_no_gpu_memory() -> None:
    nvml = FakeNVML()
    nvml.init_error = FakeNVMLError("Driver Not Loaded")
    tree = Telemetry(nvml=nvml).process_tree({os.getpid()})
    assert tree.gpu_memory_mib == ()
    assert tree.processes == 1
    assert "nvmlDeviceGetComputeRunningProcesses" not in nvml.calls


def test_the_panel_sample_never_reads_the_process_lists() -> None:
    """The ~4.5 ms process list is only read by the recorder, never for the GPU panel."""
    nvml = FakeNVML()
    Telemetry(nvml=nvml).sample()
    assert "nvmlDeviceGetComputeRunningProcesses" not in nvml.calls


def test_real_process_tree_and_network_on_this_machine() -> None:
    """The real path: real NVML (or its absence), real psutil, this very process."""
    telemetry = Telemetry()
    try:
        tree = telemetry.process_tree({os.getpid()})
        network = telemetry.network()
        sample = telemetry.sample()
    finally:
        telemetry.close()
    assert tree.processes == 1
    assert tree.rss_mib is not None and tree.rss_mib > 0
    assert network.rx_bytes_per_s is None  # a first reading has no rate yet
    # With a driver, every GPU's process list is read (this process holds no GPU memory).
    assert [index for index, _ in tree.gpu_memory_mib] == [gpu.index for gpu in sample.gpus]
    assert all(memory == 0.0 for _, memory in tree.gpu_memory_mib)
