"""Smoke test of the NVML poll benchmark: its code path runs; no timing is judged.

There is no NVIDIA driver on the machines the tests run on, so the GPUs are a stand-in NVML
module object and `nvidia-smi` a stand-in script put first on PATH; the real machine's verdict
(measured, or "not measured") is checked as well.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bench.nvml_poll import (
    NOT_MEASURED,
    SECTION_TITLE,
    SMI_QUERY,
    main,
    measure,
    probe,
    section,
)
from vlm_tui.core.host.telemetry import Telemetry

MIB = 1024 * 1024


class StandInNvml:
    """Two GPUs answering every query the benchmark and Telemetry make; calls are counted."""

    NVML_TEMPERATURE_GPU = 0

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        self.references = 0

    def _count(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1

    def nvmlInit(self) -> None:
        self.references += 1

    def nvmlShutdown(self) -> None:
        self.references -= 1

    def nvmlSystemGetDriverVersion(self) -> bytes:
        return b"550.54.15"

    def nvmlDeviceGetCount(self) -> int:
        return 2

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetName(self, handle: int) -> str:
        return "NVIDIA H100 80GB HBM3"

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> Any:
        self._count("utilization")
        return SimpleNamespace(gpu=87, memory=40)

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> Any:
        return SimpleNamespace(used=40_960 * MIB, total=81_920 * MIB, free=40_960 * MIB)

    def nvmlDeviceGetTemperature(self, handle: int, sensor: int) -> int:
        return 65

    def nvmlDeviceGetPowerUsage(self, handle: int) -> int:
        return 310_500

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: int) -> int:
        return 700_000

    def nvmlDeviceGetComputeRunningProcesses(self, handle: int) -> list[Any]:
        self._count("processes")
        return [SimpleNamespace(pid=4242, usedGpuMemory=1_024 * MIB)]


@pytest.fixture
def stand_in_smi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A `nvidia-smi` first on PATH: records its arguments, prints one CSV line per GPU."""
    folder = tmp_path / "bin"
    folder.mkdir()
    asked = tmp_path / "asked"
    script = folder / "nvidia-smi"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> {asked}\n'
        'echo "87, 40960, 81920, 65, 310.50"\n'
        'echo "12, 1024, 81920, 41, 95.20"\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    return asked


def test_every_reading_is_timed_side_by_side_and_reported(stand_in_smi: Path) -> None:
    nvml = StandInNvml()
    smi = shutil.which("nvidia-smi")
    assert smi is not None and Path(smi).parent == stand_in_smi.parent / "bin"

    result = measure(2, 3, nvml=nvml, smi=smi)

    assert result.gpu_names == ["NVIDIA H100 80GB HBM3"] * 2
    assert result.driver == "550.54.15"
    assert len(result.sample.wall_s) == len(result.host_only.wall_s) == 6
    assert result.processes is not None and len(result.processes.wall_s) == 12  # 6 x 2 GPUs
    assert result.smi is not None and len(result.smi.wall_s) == 2
    # Each timed sample read both GPUs for real (no cache), plus the untimed first ones.
    assert nvml.calls["utilization"] == 2 * (6 + 2)
    assert nvml.references == 0  # every NVML start was matched by a shutdown
    # One untimed spawn first, then one per round, each with the monitor's query.
    assert stand_in_smi.read_text().splitlines() == [" ".join(SMI_QUERY)] * 3
    assert result.smi_output.splitlines()[0] == "87, 40960, 81920, 65, 310.50"

    text = section(result, "python -m bench.nvml_poll --rounds 2 --calls 3")
    assert text.startswith(f"{SECTION_TITLE}\n")
    assert "- GPUs: 2 x NVIDIA H100 80GB HBM3, driver 550.54.15" in text
    for label in (
        "`Telemetry.sample()`, 2 GPU(s) and the host",
        "host only",
        "per GPU (difference of medians / 2)",
        "`nvmlDeviceGetComputeRunningProcesses`, one GPU",
        f"`nvidia-smi {' '.join(SMI_QUERY)}`, all GPUs",
        "first `Telemetry.sample()`",
    ):
        assert label in text, label
    assert NOT_MEASURED not in text
    if hasattr(Telemetry, "process_tree"):
        assert result.tree is not None and len(result.tree.wall_s) == 6
        assert "`Telemetry.process_tree()`, 1 process, 2 GPU(s)" in text


def test_without_nvidia_smi_the_section_says_there_is_no_spawn() -> None:
    result = measure(1, 2, nvml=StandInNvml(), smi=None)
    assert result.smi is None
    assert "`nvidia-smi` is not on PATH" in section(result, "command")


def test_this_machine_is_measured_or_said_to_have_no_gpu(tmp_path: Path) -> None:
    target = tmp_path / "BENCHMARKS.md"
    target.write_text("# Benchmarks\n\n## Start-up\n\nkept\n")

    assert main(["--rounds", "1", "--calls", "2", "--write-markdown", str(target)]) == 0

    text = target.read_text()
    assert "## Start-up\n\nkept\n" in text and f"\n{SECTION_TITLE}\n" in text
    if probe().gpu_names:
        assert "`Telemetry.sample()`" in text and NOT_MEASURED not in text
    else:
        assert NOT_MEASURED in text


def test_a_failing_nvidia_smi_is_reported_not_timed(tmp_path: Path) -> None:
    broken = tmp_path / "nvidia-smi"
    broken.write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed' >&2\nexit 9\n")
    broken.chmod(broken.stat().st_mode | stat.S_IXUSR)

    result = measure(1, 2, nvml=StandInNvml(), smi=str(broken))

    assert result.smi is None and len(result.sample.wall_s) == 2
    assert "`nvidia-smi` failed" in section(result, "command")
    assert "NVIDIA-SMI has failed" in section(result, "command")
