"""Every tracker at once on one real demo run: each one's local records, and no network.

One `vlm-tui --no-ui --demo --report_to tensorboard,mlflow,trackio,wandb --max_steps 2` in a
scratch folder whose HOME, trackio store and wandb folder are its own, without a WANDB_API_KEY
or MLFLOW_TRACKING_URI, and with every Python it starts (vlm-tui, the supervisor, axolotl)
refusing and logging any connection that is not to this host. The tests read what each tracker
wrote with the files themselves: TensorBoard's event files, MLflow's file store, trackio's
SQLite database, wandb's offline run.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import yaml

from tests.helpers import clean_environ, run_cli
from vlm_tui.core.records.folder import RunPaths
from vlm_tui.core.records.trackers_file import read_trackers

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("trackers")]

STEPS = 2
PROJECT = "vlm-tui-demo"  # the default: the output model's name
NETWORK_LOG = "network-attempts.log"

# Loaded by every Python the run starts (PYTHONPATH): a connection or name lookup that leaves
# this host is written to the log and refused, so a tracker that reaches out fails loudly too.
_GUARD = """
import ipaddress, os, socket

_LOG = os.environ["VLM_TUI_TEST_NETWORK_LOG"]


def _local(host):
    if host in (None, "", "localhost") or str(host).endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


def _refuse(what):
    with open(_LOG, "a") as log:
        log.write(f"{os.getpid()} {what}\\n")
    raise OSError(f"test network guard: {what}")


_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex
_getaddrinfo = socket.getaddrinfo


def connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _local(address[0]):
        _refuse(f"connect {address!r}")
    return _connect(self, address)


def connect_ex(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _local(address[0]):
        _refuse(f"connect {address!r}")
    return _connect_ex(self, address)


def getaddrinfo(host, *args, **kwargs):
    if not _local(host) and host != socket.gethostname():
        _refuse(f"lookup {host!r}")
    return _getaddrinfo(host, *args, **kwargs)


socket.socket.connect = connect
socket.socket.connect_ex = connect_ex
socket.getaddrinfo = getaddrinfo
"""


@pytest.fixture(scope="module")
def tracked_run(demo_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The work folder of one finished demo run reporting to all four trackers, and its output."""
    workdir = tmp_path_factory.mktemp("trackers")
    guard = workdir / "guard"
    guard.mkdir()
    (guard / "sitecustomize.py").write_text(_GUARD)
    home = workdir / "home"
    home.mkdir()
    env = clean_environ(
        {
            "VLM_TUI_CACHE_DIR": str(demo_cache),
            "HF_HUB_OFFLINE": "1",
            "HOME": str(home),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "XDG_CONFIG_HOME": str(home / ".config"),
            "XDG_STATE_HOME": str(home / ".local" / "state"),
            "TRACKIO_DIR": str(workdir / "trackio"),
            "WANDB_DIR": str(workdir),
            "WANDB_CONFIG_DIR": str(home / ".config" / "wandb"),
            "WANDB_CACHE_DIR": str(home / ".cache" / "wandb"),
            "VLM_TUI_TEST_NETWORK_LOG": str(workdir / NETWORK_LOG),
        }
    )
    for name in ("WANDB_API_KEY", "WANDB_MODE", "MLFLOW_TRACKING_URI", "TENSORBOARD_LOGGING_DIR"):
        env.pop(name, None)
    env["PYTHONPATH"] = f"{guard}:{env['PYTHONPATH']}"
    done = run_cli(
        [
            "--no-ui",
            "--demo",
            "--report_to",
            "tensorboard,mlflow,trackio,wandb",
            "--max_steps",
            str(STEPS),
        ],
        workdir,
        env,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    return workdir, output


def _run(workdir: Path) -> RunPaths:
    runs = sorted((workdir / "runs").iterdir())
    assert len(runs) == 1, runs
    return RunPaths(runs[0])


def test_nothing_tried_the_network(tracked_run: tuple[Path, str]) -> None:
    workdir, output = tracked_run
    attempts = workdir / NETWORK_LOG
    assert not attempts.exists(), attempts.read_text()
    assert "test network guard" not in output


def test_the_run_folder_records_where_each_tracker_went(tracked_run: tuple[Path, str]) -> None:
    workdir, output = tracked_run
    paths = _run(workdir)
    places = {place.tracker: place for place in read_trackers(paths)}
    assert list(places) == ["tensorboard", "mlflow", "trackio", "wandb"]
    output_dir = workdir / "outputs" / PROJECT
    assert places["tensorboard"].where == str(output_dir / "runs")
    assert places["mlflow"].where == str(workdir / "mlruns")
    assert places["trackio"].where == str(workdir / "trackio")
    assert places["wandb"].where == str(workdir / "wandb")
    for tracker in ("mlflow", "trackio", "wandb"):
        assert places[tracker].project == PROJECT
        assert places[tracker].run == paths.run_id
    assert "offline" in (places["wandb"].note or "")
    for place in places.values():
        assert f"[vlm-tui] tracker {place.line()}" in output
    # No credential is written anywhere in the run folder's records.
    config = yaml.safe_load(paths.config.read_text())
    assert config["wandb_mode"] == "offline"
    assert not any("api_key" in key for key in config)


def test_vlm_tui_runs_prints_where_each_tracker_went(tracked_run: tuple[Path, str]) -> None:
    workdir, _ = tracked_run
    paths = _run(workdir)
    done = run_cli(["runs"], workdir, clean_environ({"HOME": str(workdir / "home")}))
    assert done.returncode == 0, done.stderr
    for place in read_trackers(paths):
        assert f"{paths.run_id}  tracker {place.line()}" in done.stdout.splitlines()


def test_tensorboard_event_files_hold_the_train_loss(tracked_run: tuple[Path, str]) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    workdir, _ = tracked_run
    logs = workdir / "outputs" / PROJECT / "runs"
    event_files = list(logs.glob("*/events.out.tfevents.*"))
    assert len(event_files) == 1, event_files
    events = EventAccumulator(str(event_files[0].parent))
    events.Reload()
    assert "train/loss" in events.Tags()["scalars"], events.Tags()
    losses = events.Scalars("train/loss")
    assert [point.step for point in losses] == list(range(1, STEPS + 1))
    assert all(point.value > 0 for point in losses)


def _meta(folder: Path) -> dict[str, object]:
    loaded = yaml.safe_load((folder / "meta.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_mlflow_file_store_holds_the_experiment_run_and_loss(
    tracked_run: tuple[Path, str],
) -> None:
    workdir, _ = tracked_run
    run_id = _run(workdir).run_id
    store = workdir / "mlruns"
    experiments = [
        folder
        for folder in store.iterdir()
        if (folder / "meta.yaml").is_file() and _meta(folder).get("name") == PROJECT
    ]
    assert len(experiments) == 1, sorted(p.name for p in store.iterdir())
    runs = [folder for folder in experiments[0].iterdir() if (folder / "meta.yaml").is_file()]
    assert len(runs) == 1, runs
    assert _meta(runs[0])["run_name"] == run_id
    metrics = runs[0] / "metrics"
    loss_file = next(
        (path for path in (metrics / "loss", metrics / "train" / "loss") if path.is_file()), None
    )
    assert loss_file is not None, sorted(str(p.relative_to(metrics)) for p in metrics.rglob("*"))
    # One line a logged step: timestamp, value, step.
    steps = [int(line.split()[2]) for line in loss_file.read_text().splitlines()]
    assert steps == list(range(1, STEPS + 1))


def test_trackio_local_store_holds_the_project_and_losses(tracked_run: tuple[Path, str]) -> None:
    workdir, _ = tracked_run
    run_id = _run(workdir).run_id
    database = workdir / "trackio" / f"{PROJECT}.db"
    assert database.is_file(), sorted(p.name for p in (workdir / "trackio").iterdir())
    with sqlite3.connect(database) as connection:
        rows = connection.execute("SELECT run_name, metrics FROM metrics ORDER BY id").fetchall()
    logged = [json.loads(metrics) for name, metrics in rows if name == run_id]
    # trackio counts its own steps; the trainer's step is a metric of its own.
    steps = [metrics["train/global_step"] for metrics in logged if "train/loss" in metrics]
    assert steps == list(range(1, STEPS + 1)), rows


def test_wandb_offline_run_folder_is_written(tracked_run: tuple[Path, str]) -> None:
    workdir, _ = tracked_run
    offline_runs = list((workdir / "wandb").glob("offline-run-*"))
    assert len(offline_runs) == 1, offline_runs
    records = list(offline_runs[0].glob("run-*.wandb"))
    assert len(records) == 1 and records[0].stat().st_size > 0, records
    data = records[0].read_bytes()
    assert b"train/loss" in data
    assert PROJECT.encode() in data
