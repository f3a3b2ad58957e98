"""A panel with one row per GPU and one for the host, refreshed about once a second.

The readings come from `vlm_tui.core.host.telemetry`. NVML calls can block on the driver's lock, so
they run in a thread worker, never on the UI thread; the worker hands each sample back through
`App.call_from_thread`, because only the UI thread may touch widgets. The text itself is built by
`gpu_panel_lines`, a pure function the tests check without an app.
"""

from __future__ import annotations

from rich.cells import cell_len, set_cell_size
from textual.content import Content
from textual.widgets import Static
from textual.worker import Worker, get_current_worker

from vlm_tui.core.host.telemetry import GpuSample, HostSample, Telemetry, TelemetrySample

BAR_CELLS = 8
NOT_AVAILABLE = "n/a"
# Polling faster gains nothing: NVML itself refreshes most readings about once a second.
POLL_INTERVAL_S = 1.0


def _number(value: float | None, digits: int = 0) -> str:
    return NOT_AVAILABLE if value is None else f"{value:.{digits}f}"


def _gib(mib: float | None) -> str:
    return NOT_AVAILABLE if mib is None else f"{mib / 1024:.1f}"


def _bar(percent: float | None) -> str:
    filled = 0 if percent is None else round(min(max(percent, 0.0), 100.0) / 100 * BAR_CELLS)
    return "█" * filled + "░" * (BAR_CELLS - filled)


def _short_name(name: str) -> str:
    # Every NVML name starts with the vendor; the row is narrow.
    return name.removeprefix("NVIDIA ").strip() or name


def _gpu_cells(gpu: GpuSample) -> list[str]:
    util = NOT_AVAILABLE if gpu.utilization_pct is None else f"{gpu.utilization_pct:.0f}%"
    power = f"{_number(gpu.power_w)} W"
    if gpu.power_limit_w is not None:
        power = f"{_number(gpu.power_w)}/{_number(gpu.power_limit_w)} W"
    return [
        f"GPU{gpu.index}",
        _short_name(gpu.name),
        f"util {_bar(gpu.utilization_pct)} {util:>4}",
        f"mem {_gib(gpu.memory_used_mib)}/{_gib(gpu.memory_total_mib)} GiB",
        f"{_number(gpu.temperature_c)}°C",
        power,
    ]


def _host_line(host: HostSample) -> str:
    cpu = NOT_AVAILABLE if host.cpu_pct is None else f"{host.cpu_pct:.0f}%"
    return f"CPU {cpu}  RAM {_gib(host.ram_used_mib)}/{_gib(host.ram_total_mib)} GiB"


def _fit(line: str, width: int) -> str:
    if cell_len(line) <= width:
        return line
    if width <= 1:
        return set_cell_size(line, max(width, 0))
    return set_cell_size(line, width - 1) + "…"


def gpu_panel_lines(sample: TelemetrySample, width: int) -> list[str]:
    """One row per GPU, then the host row, each cut to `width` terminal cells."""
    if sample.gpus:
        rows = [_gpu_cells(gpu) for gpu in sample.gpus]
        # Pad each column to its widest entry so several GPUs line up under each other.
        widths = [max(cell_len(row[column]) for row in rows) for column in range(len(rows[0]))]
        lines = [
            "  ".join(
                cell if column == len(row) - 1 else set_cell_size(cell, widths[column])
                for column, cell in enumerate(row)
            )
            for row in rows
        ]
        if any(cell_len(line) > width for line in lines):
            # A narrow panel: memory, temperature and power go on a second, indented line.
            lines = [
                line for row in rows for line in ("  ".join(row[:3]), "      " + "  ".join(row[3:]))
            ]
    else:
        lines = [f"No NVIDIA GPU: {sample.gpu_note or 'none reported'}"]
    lines.append(_host_line(sample.host))
    return [_fit(line, width) for line in lines]


class GpuPanel(Static):
    """Live GPU and host readings; polls in a thread worker at most once a second."""

    DEFAULT_CSS = """
    GpuPanel {
        height: auto;
        padding: 0 1;
        background: $surface;
        color: $foreground;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    """

    def __init__(
        self,
        telemetry: Telemetry | None = None,
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__("Reading GPUs…", markup=False, name=name, id=id, classes=classes)
        self.telemetry = telemetry if telemetry is not None else Telemetry()
        self.sample: TelemetrySample | None = None
        self._worker: Worker[None] | None = None

    def on_mount(self) -> None:
        self._poll()
        self.set_interval(POLL_INTERVAL_S, self._poll)

    def on_unmount(self) -> None:
        self.workers.cancel_group(self, "telemetry")
        self.telemetry.close()

    def on_resize(self) -> None:
        if self.sample is not None:
            self.show(self.sample)

    def _poll(self) -> None:
        # A driver stuck on its lock must not pile up one blocked thread per second.
        if self._worker is not None and not self._worker.is_finished:
            return
        self._worker = self.run_worker(
            self._sample_in_thread,
            name="telemetry",
            group="telemetry",
            exclusive=True,
            thread=True,
            # Telemetry never raises; should a bug make it, the monitor must stay up.
            exit_on_error=False,
        )

    def _sample_in_thread(self) -> None:
        worker = get_current_worker()
        if worker.is_cancelled:
            return
        sample = self.telemetry.sample()
        if not worker.is_cancelled:
            self.app.call_from_thread(self.show, sample)

    def show(self, sample: TelemetrySample) -> None:
        """Display `sample`; call on the UI thread."""
        self.sample = sample
        if not self.is_mounted:
            return
        width = self.content_region.width or self.app.size.width
        self.update(Content("\n".join(gpu_panel_lines(sample, width))))

    @property
    def text(self) -> str:
        """The plain text shown now (handy for tests and screen readers)."""
        return str(self.content)
