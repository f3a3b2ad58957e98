"""--report_to, --tracker_project, --tracker_run_name: checked values, axolotl 0.19's own keys,
local places by default, where each went recorded in the run folder and shown."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers import clean_environ, refused, run_cli
from vlm_tui.core.errors import UserError
from vlm_tui.core.host.hardware import CPU_ONLY
from vlm_tui.core.records.folder import RunPaths
from vlm_tui.core.records.trackers_file import (
    TrackerPlace,
    read_trackers,
    trackers_path,
    write_trackers,
)
from vlm_tui.core.request.axolotl_config import (
    build_axolotl_config,
    merge_into_loaded,
    settings_values_from_config,
)
from vlm_tui.core.request.settings import settings_from_values, validate_field
from vlm_tui.core.request.trackers import (
    MLFLOW_FILE_STORE_VARIABLE,
    name_runs,
    require_tracker_packages,
    tracker_environment,
    tracker_places,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("none", "none"),
        ("", "none"),
        ("tensorboard", "tensorboard"),
        (" TensorBoard , mlflow,tensorboard", "tensorboard,mlflow"),
        ("wandb,trackio,mlflow,tensorboard", "wandb,trackio,mlflow,tensorboard"),
        (["mlflow", "wandb"], "mlflow,wandb"),  # a YAML preset's list
    ],
)
def test_report_to_accepts_none_or_a_comma_list(raw: object, expected: str) -> None:
    assert validate_field("report_to", raw) == expected


@pytest.mark.parametrize("raw", ["comet_ml", "none,wandb", "tensorboard,,mlflow", "all", 3])
def test_report_to_refuses_anything_else_naming_the_trackers(raw: object) -> None:
    with pytest.raises(UserError) as error:
        validate_field("report_to", raw)
    assert error.value.field == "report_to"
    assert "none or a comma list of: tensorboard, mlflow, trackio, wandb" in error.value.message


@pytest.mark.parametrize("name", ["tracker_project", "tracker_run_name"])
@pytest.mark.parametrize("raw", ["a/b", "-x", "has space", "x" * 101, "end."])
def test_tracker_names_are_one_safe_name(name: str, raw: str) -> None:
    with pytest.raises(UserError) as error:
        validate_field(name, raw)
    assert error.value.field == name


def test_tracker_names_without_a_tracker_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UserError) as error:
        settings_from_values({"tracker_project": "p"}, require_data=False)
    assert error.value.field == "tracker_project"
    with pytest.raises(UserError) as error:
        settings_from_values({"tracker_run_name": "r"}, require_data=False)
    assert error.value.field == "tracker_run_name"
    both = settings_from_values(
        {"report_to": "mlflow", "tracker_project": "p", "tracker_run_name": "r"},
        require_data=False,
    )
    assert (both.report_to, both.tracker_project, both.tracker_run_name) == ("mlflow", "p", "r")


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["--report_to", "comet"], "--report_to"),
        (["--report_to", "wandb", "--tracker_project", "a b"], "--tracker_project"),
        (["--tracker_run_name", "r"], "--tracker_run_name"),
    ],
)
def test_the_cli_refuses_in_one_line_naming_the_flag(
    args: list[str],
    flag: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    line = refused(["--demo", *args], tmp_path, monkeypatch, capsys)
    assert line.startswith(f"error: {flag}:") or f"{flag}:" in line, line


def _settings(dataset: Path, **values: object) -> object:
    return settings_from_values(
        {"dataset_name": str(dataset), "output_model_name": "pets", **values}
    )


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    path = tmp_path / "train.jsonl"
    path.write_text('{"messages": []}\n')
    return path


def test_every_tracker_becomes_axolotls_own_keys_with_local_places(
    dataset: Path, tmp_path: Path
) -> None:
    settings = _settings(dataset, report_to="tensorboard,mlflow,trackio,wandb")
    config = build_axolotl_config(settings, CPU_ONLY, tmp_path, {})  # type: ignore[arg-type]
    assert {key: value for key, value in config.items() if key.split("_")[0] in TRACKER_WORDS} == {
        "use_tensorboard": True,
        "use_mlflow": True,
        "mlflow_experiment_name": "pets",
        "mlflow_tracking_uri": (tmp_path / "mlruns").resolve().as_uri(),
        "use_trackio": True,
        "trackio_project_name": "pets",
        "use_wandb": True,
        "wandb_project": "pets",
        "wandb_mode": "offline",
    }


TRACKER_WORDS = {"use", "mlflow", "trackio", "wandb"}


def test_no_tracker_writes_no_tracker_key(dataset: Path, tmp_path: Path) -> None:
    config = build_axolotl_config(_settings(dataset), CPU_ONLY, tmp_path, {})  # type: ignore[arg-type]
    assert not [key for key in config if key.split("_")[0] in TRACKER_WORDS]


def test_the_environment_wins_over_the_local_defaults(dataset: Path, tmp_path: Path) -> None:
    settings = _settings(
        dataset, report_to="mlflow,wandb", tracker_project="proj", tracker_run_name="first"
    )
    environ = {"MLFLOW_TRACKING_URI": "http://127.0.0.1:5000", "WANDB_API_KEY": "k"}
    config = build_axolotl_config(settings, CPU_ONLY, tmp_path, environ)  # type: ignore[arg-type]
    assert "mlflow_tracking_uri" not in config and "wandb_mode" not in config
    assert config["mlflow_experiment_name"] == config["wandb_project"] == "proj"
    assert config["mlflow_run_name"] == config["wandb_name"] == "first"
    # A WANDB_MODE the user set is theirs too.
    wandb = _settings(dataset, report_to="wandb")
    own_mode = build_axolotl_config(wandb, CPU_ONLY, tmp_path, {"WANDB_MODE": "online"})  # type: ignore[arg-type]
    assert "wandb_mode" not in own_mode


def test_a_loaded_yaml_keeps_its_trackers_unless_report_to_is_given(
    dataset: Path, tmp_path: Path
) -> None:
    loaded = {"base_model": "x/y", "use_wandb": True, "wandb_project": "theirs"}
    kept = merge_into_loaded(
        loaded, settings_from_values({}, require_data=False), CPU_ONLY, tmp_path, {}
    )
    assert kept["use_wandb"] is True and kept["wandb_project"] == "theirs"
    replaced = merge_into_loaded(
        loaded,
        settings_from_values({"report_to": "tensorboard"}, require_data=False),
        CPU_ONLY,
        tmp_path,
        {},
    )
    assert replaced["use_tensorboard"] is True
    assert "use_wandb" not in replaced and "wandb_project" not in replaced
    # The form reads a YAML's trackers back.
    assert settings_values_from_config(loaded)["report_to"] == "wandb"
    assert settings_values_from_config(loaded)["tracker_project"] == "theirs"


def test_runs_are_named_after_the_run_folder_unless_named() -> None:
    config = {"use_mlflow": True, "use_wandb": True, "wandb_name": "mine", "use_tensorboard": True}
    assert name_runs(config, "20261124T100000Z-pets") == {
        **config,
        "mlflow_run_name": "20261124T100000Z-pets",
    }
    # axolotl switches wandb on by its project alone: so do we.
    assert name_runs({"wandb_project": "p"}, "r")["wandb_name"] == "r"


def test_each_trackers_place_follows_the_config_and_environment(tmp_path: Path) -> None:
    config = {
        "output_dir": str(tmp_path / "outputs" / "pets"),
        "use_tensorboard": True,
        "use_mlflow": True,
        "mlflow_tracking_uri": (tmp_path / "mlruns").as_uri(),
        "mlflow_experiment_name": "pets",
        "mlflow_run_name": "run-1",
        "use_trackio": True,
        "trackio_project_name": "pets",
        "use_wandb": True,
        "wandb_project": "pets",
        "wandb_mode": "offline",
    }
    local = {place.tracker: place for place in tracker_places(config, {"HF_HOME": "/hf"}, tmp_path)}
    assert local["tensorboard"].where == str(tmp_path / "outputs" / "pets" / "runs")
    assert local["mlflow"] == TrackerPlace("mlflow", str(tmp_path / "mlruns"), "pets", "run-1")
    assert local["trackio"].where == "/hf/trackio"
    assert local["wandb"].where == str(tmp_path / "wandb")
    assert "no WANDB_API_KEY" in (local["wandb"].note or "")
    online = {**config, "wandb_mode": None, "wandb_entity": "team", "trackio_space_id": "me/sp"}
    environ = {
        "TENSORBOARD_LOGGING_DIR": "/tb",
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:5000",
        "WANDB_API_KEY": "k",
    }
    remote = {place.tracker: place.where for place in tracker_places(online, environ, tmp_path)}
    assert remote == {
        "tensorboard": "/tb",
        "mlflow": "http://127.0.0.1:5000",
        "trackio": "https://huggingface.co/spaces/me/sp",
        "wandb": "https://wandb.ai/team/pets",
    }


def test_the_mlflow_file_store_is_allowed_only_for_a_file_store() -> None:
    env: dict[str, str] = {}
    tracker_environment({"use_mlflow": True, "mlflow_tracking_uri": "file:///w/mlruns"}, env)
    assert env[MLFLOW_FILE_STORE_VARIABLE] == "true"
    served: dict[str, str] = {"MLFLOW_TRACKING_URI": "http://127.0.0.1:5000"}
    tracker_environment({"use_mlflow": True}, served)
    assert MLFLOW_FILE_STORE_VARIABLE not in served


def test_a_tracker_without_its_package_is_refused_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A module set to None in sys.modules is how Python marks one that cannot be imported.
    monkeypatch.setitem(sys.modules, "trackio", None)
    require_tracker_packages({"use_tensorboard": True})
    with pytest.raises(UserError) as error:
        require_tracker_packages({"use_tensorboard": True, "use_trackio": True})
    assert error.value.field == "report_to"
    assert error.value.message == (
        "trackio needs the trackio package, which is not installed in this Python;"
        " install it with: pip install trackio"
    )


def test_the_trackers_record_reads_back_and_survives_a_bad_file(tmp_path: Path) -> None:
    paths = RunPaths(tmp_path)
    assert read_trackers(paths) == []
    places = [TrackerPlace("tensorboard", "/o/runs"), TrackerPlace("mlflow", "/m", "p", "r")]
    write_trackers(paths, places)
    assert read_trackers(paths) == places
    assert places[1].line() == "mlflow: /m (project p, run r)"
    trackers_path(paths).write_text('{"trackers": [1, {"tracker": "x"}, {"where": "y"}]}')
    assert read_trackers(paths) == []
    trackers_path(paths).write_text("not json")
    assert read_trackers(paths) == []


def test_a_dry_run_says_where_each_tracker_records_and_runs_lists_it(tmp_path: Path) -> None:
    env = clean_environ({"VLM_TUI_CACHE_DIR": str(tmp_path / "cache"), "HOME": str(tmp_path)})
    for name in ("WANDB_API_KEY", "WANDB_MODE", "MLFLOW_TRACKING_URI", "WANDB_DIR"):
        env.pop(name, None)
    env["TRACKIO_DIR"] = str(tmp_path / "trackio")
    work = tmp_path / "work"
    work.mkdir()
    done = run_cli(
        ["--no-ui", "--demo", "--dry-run", "--report_to", "mlflow,wandb,trackio"], work, env
    )
    assert done.returncode == 0, done.stderr
    run = next(line for line in done.stdout.splitlines() if "run folder: " in line)
    paths = RunPaths(Path(run.split("run folder: ", 1)[1]))
    assert [place.tracker for place in read_trackers(paths)] == ["mlflow", "trackio", "wandb"]
    assert (
        f"[vlm-tui] tracker wandb: {work / 'wandb'} (project vlm-tui-demo, run {paths.run_id},"
        " offline, no WANDB_API_KEY in the environment; `wandb sync` uploads it)"
    ) in done.stdout
    assert f"[vlm-tui] tracker trackio: {tmp_path / 'trackio'}" in done.stdout
    config = yaml.safe_load(paths.config.read_text())
    assert config["mlflow_tracking_uri"] == (work / "mlruns").as_uri()
    assert config["mlflow_run_name"] == paths.run_id
    assert json.loads(paths.command.read_text())["env"].get(MLFLOW_FILE_STORE_VARIABLE) == "true"
    listed = run_cli(["runs"], work, env)
    assert f"{paths.run_id}  tracker mlflow: {work / 'mlruns'}" in listed.stdout


def test_a_wandb_key_goes_online_and_is_never_written(tmp_path: Path) -> None:
    env = clean_environ({"VLM_TUI_CACHE_DIR": str(tmp_path / "cache"), "HOME": str(tmp_path)})
    env.pop("WANDB_MODE", None)
    env["WANDB_API_KEY"] = "sekrit-wandb-key-123"
    done = run_cli(["--no-ui", "--demo", "--dry-run", "--report_to", "wandb"], tmp_path, env)
    assert done.returncode == 0, done.stderr
    run = next(line for line in done.stdout.splitlines() if "run folder: " in line)
    folder = Path(run.split("run folder: ", 1)[1])
    assert "wandb_mode" not in yaml.safe_load((folder / "config.yml").read_text())
    assert "tracker wandb: https://wandb.ai (project vlm-tui-demo" in done.stdout
    for path in folder.rglob("*"):
        if path.is_file():
            assert b"sekrit-wandb-key-123" not in path.read_bytes(), path
