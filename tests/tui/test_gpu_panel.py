"""The GPU panel: its text as a pure function, then the widget polling in a real (headless) app."""

from __future__ import annotations

import asyncio
import time

from textual.app import App, ComposeResult
from textual.pilot import Pilot

from tests.unit.test_telemetry import FakeNVML
from vlm_tui.core.host.telemetry import GpuSample, HostSample, Telemetry, TelemetrySample
from vlm_tui.tui.widgets.gpu_panel import GpuPanel, gpu_panel_lines

HOST = HostSample(cpu_pct=34.0, ram_used_mib=12.3 * 1024, ram_total_mib=125.8 * 1024)


def _gpu(index: int, name: str, **overrides: float | None) -> GpuSample:
    values: dict[str, float | None] = {
        "utilization_pct": 87.0,
        "memory_used_mib": 40.1 * 1024,
        "memory_total_mib": 80.0 * 1024,
        "temperature_c": 65.0,
        "power_w": 310.0,
        "power_limit_w": 700.0,
    }
    values.update(overrides)
    return GpuSample(index=index, name=name, **values)  # type: ignore[arg-type]


def test_one_row_per_gpu_then_the_host_row() -> None:
    sample = TelemetrySample(
        time=0.0,
        gpus=(
            _gpu(0, "NVIDIA H100 80GB HBM3"),
            _gpu(1, "NVIDIA L40S", utilization_pct=5.0, power_w=None),
        ),
        host=HOST,
        gpu_note="",
    )
    lines = gpu_panel_lines(sample, width=200)

    assert len(lines) == 3
    assert lines[0] == (
        "GPU0  H100 80GB HBM3  util ███████░  87%  mem 40.1/80.0 GiB  65°C  310/700 W"
    )
    # Shorter names are padded so the columns line up across GPUs.
    assert lines[1].startswith("GPU1  L40S            util ░░░░░░░░   5%")
    assert lines[1].endswith("n/a/700 W")
    assert lines[0].index("mem") == lines[1].index("mem")
    assert lines[2] == "CPU 34%  RAM 12.3/125.8 GiB"


def test_missing_values_read_n_a() -> None:
    gpu = _gpu(
        0,
        "NVIDIA L4",
        utilization_pct=None,
        memory_used_mib=None,
        temperature_c=None,
        power_limit_w=None,
    )
    host = HostSample(cpu_pct=None, ram_used_mib=None, ram_total_mib=None)
    lines = gpu_panel_lines(TelemetrySample(0.0, (gpu,), host, ""), width=200)

    assert lines[0] == "GPU0  L4  util ░░░░░░░░  n/a  mem n/a/80.0 GiB  n/a°C  310 W"
    assert lines[1] == "CPU n/a  RAM n/a/n/a GiB"


def test_without_gpus_the_note_is_shown_and_the_host_row_kept() -> None:
    note = "no NVIDIA driver found (NVML Shared Library Not Found)"
    lines = gpu_panel_lines(TelemetrySample(0.0, (), HOST, note), width=200)

    assert lines == [f"No NVIDIA GPU: {note}", "CPU 34%  RAM 12.3/125.8 GiB"]


def test_rows_are_cut_to_the_width() -> None:
    sample = TelemetrySample(0.0, (_gpu(0, "NVIDIA H100 80GB HBM3"),), HOST, "")
    lines = gpu_panel_lines(sample, width=20)

    assert [len(line) for line in lines] == [20, 20, 20]
    assert lines[0] == "GPU0  H100 80GB HBM…"
    assert gpu_panel_lines(sample, width=0) == ["", "", ""]


def test_a_narrow_panel_puts_memory_temperature_and_power_on_a_second_line() -> None:
    sample = TelemetrySample(0.0, (_gpu(0, "NVIDIA H100 80GB HBM3"),), HOST, "")
    lines = gpu_panel_lines(sample, width=52)

    assert lines[0] == "GPU0  H100 80GB HBM3  util ███████░  87%"
    assert lines[1] == "      mem 40.1/80.0 GiB  65°C  310/700 W"
    assert lines[2] == "CPU 34%  RAM 12.3/125.8 GiB"


class PanelApp(App[None]):
    def __init__(self, telemetry: Telemetry | None) -> None:
        super().__init__()
        self.telemetry = telemetry

    def compose(self) -> ComposeResult:
        yield GpuPanel(self.telemetry)


async def _wait_for_text(pilot: Pilot[None], panel: GpuPanel, wanted: str) -> str:
    """Let the thread worker deliver a sample; bounded so a broken panel fails, not hangs."""
    deadline = time.monotonic() + 4.0
    while wanted not in panel.text and time.monotonic() < deadline:
        await pilot.pause(0.05)
    return panel.text


def test_panel_shows_gpus_from_a_stand_in_nvml() -> None:
    nvml = FakeNVML()

    async def run() -> str:
        app = PanelApp(Telemetry(nvml=nvml))
        async with app.run_test(size=(120, 10)) as pilot:
            panel = app.query_one(GpuPanel)
            return await _wait_for_text(pilot, panel, "H100")

    text = asyncio.run(run())
    assert "GPU0  H100 80GB HBM3" in text
    assert "87%" in text
    assert "CPU" in text and "RAM" in text
    # Unmounting closed the telemetry, which shut NVML down.
    assert nvml.calls["nvmlShutdown"] == 1


def test_panel_with_real_telemetry_on_this_machine() -> None:
    async def run() -> str:
        app = PanelApp(None)
        async with app.run_test(size=(120, 10)) as pilot:
            panel = app.query_one(GpuPanel)
            return await _wait_for_text(pilot, panel, "RAM")

    text = asyncio.run(run())
    # Without a driver the panel says why; on a GPU node it lists the GPUs instead.
    assert "No NVIDIA GPU: " in text or "GPU0" in text
    assert "RAM" in text
