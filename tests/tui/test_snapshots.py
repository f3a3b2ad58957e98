"""Snapshot tests: the setup and monitor screens in every shipped theme (pytest-textual-snapshot).

Everything a screen shows is pinned so the SVGs match on any machine, folder or user:
- the workdir, demo cache and config folders are fixed paths that do not exist;
- the Python shown in the command is a fixed path (the command module binds `sys.executable`
  as a default argument, so launch's own references are patched, not `sys.executable`);
- the hardware probe reports no GPU with a fixed note;
- the monitor follows a finished run folder written here, with fixed timestamps and paths, and
  its GPU panel reads a fixed sample of two H100s instead of NVML and psutil, and its cluster
  table the node's last heartbeat, written here.

Update the SVGs after an intended UI change with `pytest tests/tui/test_snapshots.py
--snapshot-update` and look at them (the report pytest writes on failure shows the diff).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from tests.recorded_runs import record_output
from vlm_tui.core.host.hardware import Hardware
from vlm_tui.core.host.telemetry import GpuSample, HostSample, Telemetry, TelemetrySample
from vlm_tui.core.launch import command, steps
from vlm_tui.core.records.folder import RunPaths
from vlm_tui.core.request.settings import settings_from_values
from vlm_tui.theme_files import load_theme_specs
from vlm_tui.tui.app import VlmTuiApp
from vlm_tui.tui.monitor_screen import MonitorScreen
from vlm_tui.tui.setup_screen import SetupScreen
from vlm_tui.tui.setup_values import start_for
from vlm_tui.tui.widgets.cluster_table import ClusterTable
from vlm_tui.tui.widgets.gpu_panel import GpuPanel
from vlm_tui.tui.widgets.log_view import LogView

SnapCompare = Callable[..., bool]

SIZE = (140, 45)
THEMES = sorted(spec.name for spec in load_theme_specs())
# None of these exist: nothing is read from or written to them, they are only shown.
WORKDIR = Path("/nonexistent/vlm-tui-snapshots/work")
CACHE_DIR = "/nonexistent/vlm-tui-snapshots/cache"
PYTHON = "/nonexistent/vlm-tui-snapshots/venv/bin/python"
OUTPUT_DIR = f"{WORKDIR}/outputs/vlm-tui-demo"
RUN_NAME = "20260301T120000Z-vlm-tui-demo"
HARDWARE_NOTE = "no NVIDIA driver found (NVML Shared Library Not Found)"
WAIT_S = 15.0
STEPS = 32


# ---- pinning the environment ------------------------------------------------------------


def fixed_environ() -> dict[str, str]:
    """A small environment of our own: the runner's variables never reach the screens."""
    return {
        "HOME": "/nonexistent/vlm-tui-snapshots/home",
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "VLM_TUI_CACHE_DIR": CACHE_DIR,
        "XDG_CONFIG_HOME": "/nonexistent/vlm-tui-snapshots/config",
    }


@pytest.fixture(autouse=True)
def pinned(monkeypatch: pytest.MonkeyPatch) -> None:
    # Textual drops colours when NO_COLOR is set, which a CI runner may do.
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setattr(steps, "probe_hardware", lambda environ: Hardware(note=HARDWARE_NOTE))
    monkeypatch.setattr(
        steps, "training_argv", functools.partial(command.training_argv, python=PYTHON)
    )
    monkeypatch.setattr(
        steps, "accelerate_launcher", functools.partial(command.accelerate_launcher, PYTHON)
    )


class FixedTelemetry(Telemetry):
    """Two busy H100s and a host, the same reading every second."""

    def sample(self) -> TelemetrySample:
        gpus = tuple(
            GpuSample(
                index=index,
                name="NVIDIA H100 80GB HBM3",
                utilization_pct=util,
                memory_used_mib=memory,
                memory_total_mib=81559.0,
                temperature_c=temperature,
                power_w=power,
                power_limit_w=700.0,
            )
            for index, util, memory, temperature, power in (
                (0, 97.0, 61440.0, 64.0, 612.5),
                (1, 88.0, 60211.0, 61.0, 575.0),
            )
        )
        host = HostSample(cpu_pct=23.0, ram_used_mib=48128.0, ram_total_mib=2063872.0)
        return TelemetrySample(time=0.0, gpus=gpus, host=host, gpu_note="")

    def close(self) -> None:
        pass


def make_app(theme: str) -> VlmTuiApp:
    environ = fixed_environ()
    request = steps.LaunchRequest(settings=settings_from_values({}, require_data=False), demo=True)
    return VlmTuiApp(start_for(request, environ, WORKDIR), environ, WORKDIR, theme=theme)


async def wait_until(pilot: Pilot[int], condition: Callable[[], bool], what: str) -> None:
    for _ in range(int(WAIT_S / 0.05)):
        if condition():
            return
        await pilot.pause(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def steady_inputs(pilot: Pilot[int]) -> None:
    """A blinking cursor would be caught on or off at random."""
    for field in pilot.app.screen.query(Input):
        field.cursor_blink = False


# ---- a finished run folder --------------------------------------------------------------


def _stamp(second: int) -> str:
    return f"[2026-03-01 12:00:{second:02d},{(second * 37) % 1000:03d}]"


def _bar(step: int, rate: str) -> str:
    """One tqdm redraw of the trainer's bar, as tqdm draws it at `step`."""
    percent = 100 * step // STEPS
    filled = 10 * step // STEPS
    bar = "█" * filled + " " * (10 - filled)
    times = (
        "00:00<?, ?" if step == 0 else f"00:{step // 18:02d}<00:{(STEPS - step) // 18:02d}, {rate}"
    )
    return f"{percent:3d}%|{bar}| {step}/{STEPS} [{times}it/s]"


def train_log() -> str:
    """A demo run's train.log as axolotl writes it: tqdm redraws with \\r, dicts, INFO lines."""
    info = [
        "[axolotl.cli.config] config:",
        "[axolotl.cli.checks] Skipping HuggingFace token verification because HF_HUB_OFFLINE is"
        " set to True. Only local files will be used.",
        "[axolotl.utils.data.sft] Loading raw datasets...",
        f"[axolotl.utils.data.wrappers] Loading dataset: {CACHE_DIR}/demo/v1/data/demo.jsonl"
        " with base_type: chat_template and prompt_style: None",
        f"[axolotl.utils.data.sft] Maximum number of steps set at {STEPS}",
        "[axolotl.loaders.model] Converting modules to torch.float32",
        f"[axolotl.train] Pre-saving adapter config to {OUTPUT_DIR}...",
        "[axolotl.train] Starting trainer...",
    ]
    parts = [f"{_stamp(second)} [INFO] {text}\n" for second, text in enumerate(info, start=2)]
    parts.insert(6, "trainable params: 34,816 || all params: 194,880 || trainable%: 17.8654\n")
    parts.append(f"\r{_bar(0, '')}")
    loss = 6.8
    for step in range(1, STEPS + 1):
        rate = "17.69" if step > 4 else " 3.39"
        rate_text = f"{float(rate):.2f}".rjust(5)
        lr = 0.01 * (1 - (step - 1) / STEPS)
        metrics = {
            "loss": f"{loss:.4g}",
            "grad_norm": f"{max(4.5 - step * 0.12, 0.5):.4g}",
            "learning_rate": f"{lr:.4g}",
            "tokens/train_per_sec_per_gpu": f"{2000 + (step * 53) % 400}",
            "epoch": f"{step / 16:.4g}",
        }
        parts.append(f"\r{_bar(step, rate_text)}\r{' ' * 46}\r{metrics}\n")
        loss = loss * 0.86 if step < 20 else loss * 0.97
    summary = {
        "train_runtime": "1.809",
        "train_samples_per_second": "70.76",
        "train_steps_per_second": "17.69",
        "train_loss": "1.214",
        "epoch": "2",
    }
    parts.append(f"\r{' ' * 47}\r{summary}\n")
    parts.append(f"\r{_bar(STEPS, '17.69')}\n")
    parts.append(
        f"{_stamp(20)} [INFO] [axolotl.train] Training completed! Saving trained model to"
        f" {OUTPUT_DIR}.\n"
    )
    parts.append(f"{_stamp(20)} [INFO] [axolotl.train] Model successfully saved to {OUTPUT_DIR}\n")
    return "".join(parts)


def write_finished_run(parent: Path) -> RunPaths:
    paths = RunPaths(parent / "runs" / RUN_NAME)
    paths.root.mkdir(parents=True)
    config = f"{WORKDIR}/runs/{RUN_NAME}/config.yml"
    paths.config.write_text(
        f"base_model: {CACHE_DIR}/demo/v1/model\n"
        "chat_template: llava\n"
        "datasets:\n"
        f"- path: {CACHE_DIR}/demo/v1/data/demo.jsonl\n"
        "  type: chat_template\n"
        "micro_batch_size: 4\n"
        "gradient_accumulation_steps: 1\n"
        "num_epochs: 2\n"
        "learning_rate: 0.01\n"
        "logging_steps: 1\n"
        f"output_dir: {OUTPUT_DIR}\n"
        "adapter: lora\n",
        encoding="utf-8",
    )
    topology = {
        "source": "none",
        "nodes": 1,
        "node_rank": 0,
        "processes_per_node": 1,
        "world_size": 1,
        "global_rank": 0,
        "local_rank": 0,
        "master_addr": "127.0.0.1",
        "master_port": None,
        "origins": {},
    }
    paths.command.write_text(
        json.dumps(
            {
                "argv": [PYTHON, "-m", "axolotl.cli.train", config],
                "shown": f"{PYTHON} -m axolotl.cli.train {config}",
                "cwd": str(WORKDIR),
                "env": {"PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"},
                "mode": "single",
                "topology": topology,
                "logging_steps": 1,
                "start_step": 0,
            },
            indent=2,
        ),
        encoding="utf-8",
    )
    record_output(
        paths,
        train_log(),
        {
            "run_id": RUN_NAME,
            "state": "finished",
            "created_at": "2026-03-01T12:00:00.000Z",
            "started_at": "2026-03-01T12:00:00.100Z",
            "ended_at": "2026-03-01T12:00:21.000Z",
            "output_dir": OUTPUT_DIR,
            "config": config,
            "exit_code": 0,
            "stop_requested": None,
            "reason": None,
        },
    )
    write_last_heartbeat(paths)
    return paths


def write_last_heartbeat(paths: RunPaths) -> None:
    """The node's final heartbeat, as its supervisor's recorder leaves it at the end."""
    gpus = [
        {
            "index": index,
            "name": "NVIDIA H100 80GB HBM3",
            "utilization_pct": util,
            "memory_used_mib": memory,
            "memory_total_mib": 81559.0,
        }
        for index, util, memory in ((0, 97.0, 61440.0), (1, 88.0, 60211.0))
    ]
    telemetry = paths.root / "telemetry"
    telemetry.mkdir()
    (telemetry / "node0-gpu-node.invalid.json").write_text(
        json.dumps(
            {
                "node_rank": 0,
                "nodes": 1,
                "host": "gpu-node.invalid",
                "pid": 4242,
                "run": RUN_NAME,
                "interval_s": 1.0,
                "time": 1772366421.0,
                "seq": 21,
                "state": "finished",
                "gpus": gpus,
                "cpu_pct": 23.0,
                "net_rx_bytes_per_s": 1.2e6,
                "net_tx_bytes_per_s": 3.4e5,
            }
        ),
        encoding="utf-8",
    )


# ---- the snapshots ----------------------------------------------------------------------


@pytest.mark.parametrize("theme", THEMES)
def test_setup_screen(theme: str, snap_compare: SnapCompare) -> None:
    """The demo's form, the environment panel and the command preview."""

    async def ready(pilot: Pilot[int]) -> None:
        await wait_until(pilot, lambda: isinstance(pilot.app.screen, SetupScreen), "setup")
        screen = pilot.app.screen
        assert isinstance(screen, SetupScreen)
        await wait_until(pilot, lambda: screen.last_preview is not None, "the preview")
        steady_inputs(pilot)
        await pilot.pause()

    assert snap_compare(make_app(theme), terminal_size=SIZE, run_before=ready)


@pytest.mark.parametrize("theme", THEMES)
def test_monitor_screen(theme: str, snap_compare: SnapCompare, tmp_path: Path) -> None:
    """A finished demo run: loss chart, full progress, two GPUs, the end state and the log."""
    paths = write_finished_run(tmp_path)

    async def ready(pilot: Pilot[int]) -> None:
        app = pilot.app
        await wait_until(pilot, lambda: isinstance(app.screen, SetupScreen), "setup")
        setup = app.screen
        assert isinstance(setup, SetupScreen)
        # Let the setup screen's preview worker finish, so nothing lands after the snapshot.
        await wait_until(pilot, lambda: setup.last_preview is not None, "the preview")
        monitor = MonitorScreen(
            None, fixed_environ(), WORKDIR, run_folder=paths, telemetry=FixedTelemetry()
        )
        await app.push_screen(monitor)
        await wait_until(pilot, lambda: monitor.view.ended, "the end of the run")
        gpus = monitor.query_one(GpuPanel)
        await wait_until(pilot, lambda: gpus.sample is not None, "the GPU panel")
        nodes = monitor.query_one(ClusterTable)
        await wait_until(pilot, lambda: nodes.view is not None, "the cluster table")
        # The log pane flushes on a timer; wait for every line to reach it.
        log = monitor.query_one(LogView)
        await wait_until(pilot, lambda: log.lines_written == log.lines_received, "the log")
        steady_inputs(pilot)
        await pilot.pause()

    assert snap_compare(make_app(theme), terminal_size=SIZE, run_before=ready)
