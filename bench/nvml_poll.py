"""NVML poll: what one GPU reading costs through NVML, against spawning `nvidia-smi`.

The monitor reads its GPUs through `vlm_tui.core.host.telemetry.Telemetry` (NVML in-process, at most
once a second). This times, round after round and side by side:

- `Telemetry.sample()` (every GPU and the host), and the same without GPUs (an NVML that lists
  none: the host part alone); their difference over the GPU count is the poll per GPU;
- NVML's list of compute processes with their GPU memory (`nvmlDeviceGetComputeRunningProcesses`)
  per GPU, and `Telemetry.process_tree()` (the run's processes: CPU, RSS, GPU memory), with
  and without GPUs;
- one spawn of `nvidia-smi --query-gpu=... --format=csv,noheader,nounits`, which reads the same
  figures for every GPU.

Wall time per call (perf_counter) and CPU time: this thread's for the in-process calls, the
child's (and this thread's fork and wait) for the spawn. Where no NVIDIA driver is present it
says so and measures nothing.

    python -m bench.nvml_poll [--rounds 20] [--calls 50] [--write-markdown BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.ui_flood import FILE_HEADER, machine_lines, replace_section
from vlm_tui.core.host.telemetry import Telemetry

SECTION_TITLE = "## NVML poll"
MODULE = "bench.nvml_poll"
SMI_QUERY = (
    "--query-gpu=utilization.gpu,memory.used,memory.total,temperature.gpu,power.draw",
    "--format=csv,noheader,nounits",
)
DEFAULT_ROUNDS = 20
DEFAULT_CALLS = 50  # in-process calls per round; one nvidia-smi spawn per round
SMI_TIMEOUT_S = 60.0
NOT_MEASURED = "not measured: no NVIDIA GPU/driver on the machine that ran this"


class _NoGpuNvml:
    """An NVML that starts and lists no GPU: `Telemetry.sample()` then reads the host alone."""

    def nvmlInit(self) -> None:
        pass

    def nvmlShutdown(self) -> None:
        pass

    def nvmlDeviceGetCount(self) -> int:
        return 0


@dataclass
class Calls:
    """Per-call wall and CPU seconds of one measured thing."""

    name: str
    wall_s: list[float] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)

    def add(self, wall: float, cpu: float) -> None:
        self.wall_s.append(wall)
        self.cpu_s.append(cpu)

    @property
    def wall_median(self) -> float:
        return statistics.median(self.wall_s) if self.wall_s else float("nan")

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu_s) if self.cpu_s else float("nan")


@dataclass
class NvmlResult:
    gpu_names: list[str]
    driver: str
    first_sample_s: float  # the first sample: NVML's start and the GPU list included
    sample: Calls  # Telemetry.sample(), all GPUs and the host
    host_only: Calls  # Telemetry.sample() with no GPU listed
    processes: Calls | None  # nvmlDeviceGetComputeRunningProcesses, one GPU per call
    # Telemetry.process_tree() of this process, with and without GPUs (None where absent).
    tree: Calls | None
    tree_host_only: Calls | None
    smi: Calls | None  # one nvidia-smi spawn (all GPUs); None without the command
    smi_output: str = ""
    smi_note: str = "`nvidia-smi` is not on PATH"  # why there is no spawn to compare with

    @property
    def gpu_count(self) -> int:
        return len(self.gpu_names)

    @property
    def gpu_part_s(self) -> float:
        """The GPUs' share of one sample (every GPU together)."""
        return max(self.sample.wall_median - self.host_only.wall_median, 0.0)

    @property
    def gpu_part_cpu_s(self) -> float:
        return max(self.sample.cpu_median - self.host_only.cpu_median, 0.0)

    @property
    def tree_gpu_part_s(self) -> float | None:
        """The GPUs' share of one process-tree reading (their process lists)."""
        if self.tree is None or self.tree_host_only is None:
            return None
        return max(self.tree.wall_median - self.tree_host_only.wall_median, 0.0)


@dataclass(frozen=True)
class Probe:
    """Whether NVML works here: the GPUs it lists, or why there are none."""

    gpu_names: list[str]
    note: str


def probe(nvml: Any | None = None) -> Probe:
    telemetry = Telemetry(nvml=nvml, min_interval_s=0)
    try:
        sample = telemetry.sample()
    finally:
        telemetry.close()
    return Probe([gpu.name for gpu in sample.gpus], sample.gpu_note)


def _timed(call: Callable[[], object]) -> tuple[float, float]:
    cpu = time.thread_time()
    start = time.perf_counter()
    call()
    return time.perf_counter() - start, time.thread_time() - cpu


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def spawn_smi(smi: str) -> tuple[float, float, str]:
    """One `nvidia-smi` query: wall, CPU (the child's and this thread's), its output."""
    children = _children_cpu()
    cpu = time.thread_time()
    start = time.perf_counter()
    done = subprocess.run(
        [smi, *SMI_QUERY], capture_output=True, text=True, timeout=SMI_TIMEOUT_S, check=False
    )
    wall = time.perf_counter() - start
    used = time.thread_time() - cpu + _children_cpu() - children
    if done.returncode != 0:
        raise RuntimeError(f"{smi} failed ({done.returncode}): {done.stderr.strip()[-300:]}")
    return wall, used, done.stdout


def _driver_version(nvml: Any) -> str:
    with contextlib.suppress(Exception):
        version = nvml.nvmlSystemGetDriverVersion()
        return version.decode() if isinstance(version, bytes) else str(version)
    return "unknown"


def _process_queries(nvml: Any) -> list[Callable[[], object]] | None:
    """One call per GPU reading its compute processes; None where NVML lacks the query."""
    query = getattr(nvml, "nvmlDeviceGetComputeRunningProcesses", None)
    if query is None:
        return None
    count = int(nvml.nvmlDeviceGetCount())
    return [functools.partial(query, nvml.nvmlDeviceGetHandleByIndex(i)) for i in range(count)]


def measure(
    rounds: int,
    calls: int,
    *,
    nvml: Any | None = None,
    smi: str | None = None,
) -> NvmlResult:
    """Interleaved rounds: `calls` timed calls of each in-process reading, one spawn."""
    if nvml is None:
        import pynvml

        nvml = pynvml
    telemetry = Telemetry(nvml=nvml, min_interval_s=0)
    host_only = Telemetry(nvml=_NoGpuNvml(), min_interval_s=0)
    first_s, _ = _timed(telemetry.sample)
    gpus = telemetry.sample().gpus
    if not gpus:
        telemetry.close()
        raise RuntimeError(f"NVML lists no GPU: {telemetry.sample().gpu_note}")
    host_only.sample()  # its CPU baseline, as the monitor's first sample has
    # Our own reference on NVML (it counts them) for the queries Telemetry does not make.
    nvml.nvmlInit()
    sampled, host_sampled = Calls("sample"), Calls("host only")
    # The per-process group (newer Telemetry): this process stands for the run's.
    tree_of: Callable[..., object] | None = getattr(telemetry, "process_tree", None)
    tree_host_of: Callable[..., object] | None = getattr(host_only, "process_tree", None)
    trees = None
    if tree_of is not None and tree_host_of is not None:
        own = (os.getpid(),)
        trees = (functools.partial(tree_of, own), functools.partial(tree_host_of, own))
    spawned = Calls("nvidia-smi") if smi is not None else None
    result = NvmlResult(
        gpu_names=[gpu.name for gpu in gpus],
        driver=_driver_version(nvml),
        first_sample_s=first_s,
        sample=sampled,
        host_only=host_sampled,
        processes=None,
        tree=Calls("process tree") if trees else None,
        tree_host_only=Calls("process tree, host only") if trees else None,
        smi=spawned,
    )
    # Every in-process reading of a round, in order, with where its timings go.
    readings: list[tuple[Calls, Callable[[], object]]] = [
        (sampled, telemetry.sample),
        (host_sampled, host_only.sample),
    ]
    try:
        queries = _process_queries(nvml) or []
        if queries:
            result.processes = Calls("processes")
            readings += [(result.processes, query) for query in queries]
        if trees is not None and result.tree is not None and result.tree_host_only is not None:
            readings += [(result.tree, trees[0]), (result.tree_host_only, trees[1])]
            for tree in trees:
                tree()  # untimed: each keeps a CPU baseline from its first reading
        if smi is not None:
            try:
                result.smi_output = spawn_smi(smi)[2]  # untimed: the driver may need waking
            except (RuntimeError, OSError, subprocess.TimeoutExpired) as error:
                result.smi_note = f"`nvidia-smi` failed: {error}"
                smi = spawned = result.smi = None
        for _ in range(rounds):
            for _ in range(calls):
                for timings, reading in readings:
                    timings.add(*_timed(reading))
            if smi is not None and spawned is not None:
                wall, cpu, _ = spawn_smi(smi)
                spawned.add(wall, cpu)
    finally:
        with contextlib.suppress(Exception):
            nvml.nvmlShutdown()
        telemetry.close()
        host_only.close()
    return result


# ---- reporting ---------------------------------------------------------------------------------


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:,.1f}"


def table(result: NvmlResult) -> str:
    count = result.gpu_count
    rows = [
        "| what | median wall µs | min µs | max µs | median CPU µs | calls |",
        "|---|---:|---:|---:|---:|---:|",
    ]

    def row(label: str, calls: Calls, divide: int = 1) -> str:
        return (
            f"| {label} | {_us(calls.wall_median / divide)} | {_us(min(calls.wall_s) / divide)} "
            f"| {_us(max(calls.wall_s) / divide)} | {_us(calls.cpu_median / divide)} "
            f"| {len(calls.wall_s)} |"
        )

    rows.append(row(f"`Telemetry.sample()`, {count} GPU(s) and the host", result.sample))
    rows.append(row("`Telemetry.sample()`, host only (no GPU listed)", result.host_only))
    rows.append(
        f"| GPU part of one sample, per GPU (difference of medians / {count}) "
        f"| {_us(result.gpu_part_s / count)} | | | {_us(result.gpu_part_cpu_s / count)} | |"
    )
    if result.processes is not None:
        rows.append(row("`nvmlDeviceGetComputeRunningProcesses`, one GPU", result.processes))
    tree_gpu = result.tree_gpu_part_s
    if result.tree is not None and result.tree_host_only is not None and tree_gpu is not None:
        rows.append(row(f"`Telemetry.process_tree()`, 1 process, {count} GPU(s)", result.tree))
        rows.append(row("`Telemetry.process_tree()`, 1 process, no GPU", result.tree_host_only))
        rows.append(
            f"| GPU part of one process-tree reading, per GPU | {_us(tree_gpu / count)} | | | | |"
        )
    if result.smi is not None:
        rows.append(row(f"`nvidia-smi {' '.join(SMI_QUERY)}`, all GPUs", result.smi))
    rows.append(
        f"| first `Telemetry.sample()` (NVML start-up and GPU list) "
        f"| {_us(result.first_sample_s)} | | | | 1 |"
    )
    return "\n".join(rows)


def comparison(result: NvmlResult) -> str:
    parts = []
    count = result.gpu_count
    if result.smi is None:
        parts.append(f"{result.smi_note}: no spawn to compare with.")
    elif result.gpu_part_s > 0:
        nvml_per_gpu = result.gpu_part_s / count
        text = (
            f"One `nvidia-smi` spawn takes {result.smi.wall_median * 1e3:.1f} ms for {count} "
            f"GPU(s), {result.smi.wall_median / result.gpu_part_s:,.0f}x the NVML poll of "
            f"every GPU ({nvml_per_gpu * 1e6:.1f} µs per GPU) in wall time"
        )
        if result.gpu_part_cpu_s > 0:
            text += f" and {result.smi.cpu_median / result.gpu_part_cpu_s:,.0f}x in CPU time"
        parts.append(text + " (medians measured side by side).")
    if result.processes is not None:
        parts.append(
            f"The per-process GPU memory query costs {result.processes.wall_median * 1e6:.1f} µs "
            "per GPU."
        )
    tree_gpu = result.tree_gpu_part_s
    if tree_gpu is not None:
        parts.append(
            f"`Telemetry.process_tree()` spends {tree_gpu * 1e6 / count:.1f} µs per GPU on it."
        )
    return " ".join(parts)


METHOD = (
    "Method: rounds interleave, in one process, timed calls of `Telemetry.sample()` (real NVML, "
    "no caching: `min_interval_s=0`), of the same on an NVML that lists no GPU (the host part "
    "alone: psutil's CPU and memory), of `nvmlDeviceGetComputeRunningProcesses` for each GPU, "
    "of `Telemetry.process_tree()` for this process with and without GPUs (the per-process "
    "group: CPU, RSS and the GPUs' process lists, where Telemetry has it), and one spawn of "
    "`nvidia-smi` with the same query the monitor shows (one untimed spawn and one untimed "
    "sample first). The poll per GPU is the difference of the two samples' medians over the "
    "GPU count, and likewise for the process tree. Wall time from perf_counter; CPU time is "
    "this thread's for the in-process calls and, for the spawn, the child's (getrusage) plus "
    "this thread's. Nothing trains meanwhile: the GPUs are idle."
)


def section(result: NvmlResult | None, command: str, reason: str = "") -> str:
    parts = [SECTION_TITLE, "", METHOD, "", f"`{command}`. Machine:", "", *machine_lines()]
    if result is None:
        parts += ["", f"{NOT_MEASURED}{f' ({reason})' if reason else ''}."]
        return "\n".join(parts) + "\n"
    names = ", ".join(sorted(set(result.gpu_names)))
    parts += [
        f"- GPUs: {result.gpu_count} x {names}, driver {result.driver}",
        "",
        table(result),
    ]
    text = comparison(result)
    if text:
        parts += ["", text]
    return "\n".join(parts) + "\n"


def command_line(rounds: int, calls: int) -> str:
    return f"python -m {MODULE} --rounds {rounds} --calls {calls}"


def write_markdown(path: Path, text: str) -> None:
    document = path.read_text(encoding="utf-8") if path.exists() else FILE_HEADER
    path.write_text(replace_section(document, text, SECTION_TITLE), encoding="utf-8")


def run(rounds: int, calls: int, nvml: Any | None = None) -> tuple[NvmlResult | None, str]:
    """The figures, or None and why nothing was measured."""
    found = probe(nvml)
    if not found.gpu_names:
        return None, found.note or "NVML lists no GPU"
    return measure(rounds, calls, nvml=nvml, smi=shutil.which("nvidia-smi")), ""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=f"python -m {MODULE}",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS)
    parser.add_argument("--calls", type=int, default=DEFAULT_CALLS, help="per round")
    parser.add_argument("--write-markdown", type=Path, metavar="FILE")
    args = parser.parse_args(argv)
    rounds, calls = max(args.rounds, 1), max(args.calls, 1)
    result, reason = run(rounds, calls)
    text = section(result, command_line(rounds, calls), reason)
    print(text)
    if args.write_markdown is not None:
        write_markdown(args.write_markdown, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
