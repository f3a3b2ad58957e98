"""Where a run's metrics go besides its own records: TensorBoard, MLflow, trackio, wandb.

`--report_to` names them (HF's own word, a comma list like `tensorboard,mlflow`); they are
written as axolotl 0.19's own keys (`use_tensorboard`, `use_mlflow`/`mlflow_*`,
`use_trackio`/`trackio_*`, `use_wandb`/`wandb_*`), which axolotl turns into the trainer's
`report_to` and the trackers' environment variables. Every tracker records locally unless the
environment says otherwise: TensorBoard in the output folder, MLflow in a file store under the
work folder, trackio in its local store, wandb offline without a WANDB_API_KEY. Credentials
only ever come from the environment; nothing here writes one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlm_tui.core.errors import UserError
from vlm_tui.core.records.trackers_file import TrackerPlace

TRACKERS = ("tensorboard", "mlflow", "trackio", "wandb")
NO_TRACKER = "none"
# A project or run name: trackio names a file after the project, so one folder name's rules.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
# The MLflow file store, under the work folder, when MLFLOW_TRACKING_URI does not name one.
MLFLOW_FOLDER = "mlruns"
# mlflow 3 refuses its file store unless this is set (it prefers a database it does not ship
# in mlflow-skinny); the training's environment gets it only for a file store.
MLFLOW_FILE_STORE_VARIABLE = "MLFLOW_ALLOW_FILE_STORE"

# The axolotl keys each tracker is switched on by and named with.
_SWITCH = {
    "tensorboard": "use_tensorboard",
    "mlflow": "use_mlflow",
    "trackio": "use_trackio",
    "wandb": "use_wandb",
}
PROJECT_KEYS = {
    "mlflow": "mlflow_experiment_name",
    "trackio": "trackio_project_name",
    "wandb": "wandb_project",
}
RUN_NAME_KEYS = {"mlflow": "mlflow_run_name", "trackio": "trackio_run_name", "wandb": "wandb_name"}
# Every key an explicit --report_to decides in a loaded YAML.
TRACKER_KEYS = (
    *_SWITCH.values(),
    *PROJECT_KEYS.values(),
    *RUN_NAME_KEYS.values(),
    "mlflow_tracking_uri",
    "wandb_mode",
)


@dataclass(frozen=True)
class Tracked:
    """What a tracker needs installed in the training's Python."""

    module: str
    distribution: str


_PACKAGES = {
    "tensorboard": Tracked("tensorboard", "tensorboard"),
    "mlflow": Tracked("mlflow", "mlflow-skinny"),
    "trackio": Tracked("trackio", "trackio"),
    "wandb": Tracked("wandb", "wandb"),
}


def report_to(value: object) -> str:
    """`none`, or trackers from TRACKERS as a comma list; returned in one spelling."""
    allowed = f"must be {NO_TRACKER} or a comma list of: {', '.join(TRACKERS)}"
    if isinstance(value, list | tuple):
        value = ",".join(str(part) for part in value)
    if not isinstance(value, str):
        raise ValueError(allowed)
    names = [part.strip().lower() for part in value.split(",")]
    if names == [NO_TRACKER] or names == [""]:
        return NO_TRACKER
    if any(name not in TRACKERS for name in names):
        raise ValueError(allowed)
    return ",".join(dict.fromkeys(names))


def tracker_name(value: object) -> str:
    """A project or run name as every tracker accepts it."""
    text = str(value).strip()
    if not _NAME.fullmatch(text) or text.endswith("."):
        raise ValueError(
            "must be 1-100 characters: letters, digits, '.', '_' or '-',"
            " starting with a letter or digit"
        )
    return text


def chosen(report: str) -> tuple[str, ...]:
    """The trackers a validated report_to names, in its order."""
    return () if report == NO_TRACKER else tuple(report.split(","))


def file_uri(folder: Path) -> str:
    return folder.resolve().as_uri()


def tracker_keys(
    report: str,
    project: str,
    run_name: str | None,
    workdir: Path,
    environ: Mapping[str, str],
) -> dict[str, Any]:
    """axolotl's keys for the trackers `report` names, with local places where they need one.

    A run name left out here is the run folder's (`name_runs`, once the folder exists).
    """
    keys: dict[str, Any] = {}
    for tracker in chosen(report):
        keys[_SWITCH[tracker]] = True
        if tracker in PROJECT_KEYS:
            keys[PROJECT_KEYS[tracker]] = project
        if run_name is not None and tracker in RUN_NAME_KEYS:
            keys[RUN_NAME_KEYS[tracker]] = run_name
    if "mlflow" in chosen(report) and not environ.get("MLFLOW_TRACKING_URI"):
        keys["mlflow_tracking_uri"] = file_uri(workdir / MLFLOW_FOLDER)
    # Without a key wandb would ask for one; a WANDB_MODE the user set is theirs.
    user_says = environ.get("WANDB_API_KEY") or environ.get("WANDB_MODE")
    if "wandb" in chosen(report) and not user_says:
        keys["wandb_mode"] = "offline"
    return keys


def tracked_by(config: Mapping[str, Any]) -> tuple[str, ...]:
    """The trackers a config switches on (axolotl also switches one on by its project key)."""
    return tuple(
        tracker
        for tracker in TRACKERS
        if config.get(_SWITCH[tracker]) is True
        or (tracker in PROJECT_KEYS and bool(config.get(PROJECT_KEYS[tracker])))
    )


def name_runs(config: Mapping[str, Any], run_id: str) -> dict[str, Any]:
    """The config with the run folder's name for every tracker's run that has no name."""
    named = dict(config)
    for tracker in tracked_by(config):
        key = RUN_NAME_KEYS.get(tracker)
        if key is not None and not named.get(key):
            named[key] = run_id
    return named


def require_tracker_packages(config: Mapping[str, Any]) -> None:
    """Refuse (one line naming report_to) a tracker whose package this Python lacks."""
    # Here, not at the top: the family check reads the model's family, which reads settings.
    from vlm_tui.core.request.family_packages import is_installed

    for tracker in tracked_by(config):
        needed = _PACKAGES[tracker]
        if not is_installed(needed.module):
            raise UserError(
                "report_to",
                f"{tracker} needs the {needed.distribution} package, which is not installed in"
                f" this Python; install it with: pip install {needed.distribution}",
            )


def tracker_environment(config: Mapping[str, Any], env: dict[str, str]) -> None:
    """What the training's environment needs for the config's trackers to record locally."""
    uri = config.get("mlflow_tracking_uri") or env.get("MLFLOW_TRACKING_URI") or ""
    if "mlflow" in tracked_by(config) and str(uri).startswith("file:"):
        env.setdefault(MLFLOW_FILE_STORE_VARIABLE, "true")
    if "trackio" in tracked_by(config):
        # trackio's dashboard is gradio's; nothing here launches it, and nothing reports usage.
        env.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


def _path_of(uri: str) -> str:
    """A file: URI as the folder it names; any other URI as it is."""
    if uri.startswith("file://"):
        return uri.removeprefix("file://")
    return uri.removeprefix("file:")


def _huggingface_home(environ: Mapping[str, str]) -> Path:
    if environ.get("HF_HOME"):
        return Path(environ["HF_HOME"]).expanduser()
    cache = environ.get("XDG_CACHE_HOME") or str(Path("~/.cache").expanduser())
    return Path(cache) / "huggingface"


def _place(
    tracker: str, config: Mapping[str, Any], environ: Mapping[str, str], workdir: Path
) -> TrackerPlace:
    project = config.get(PROJECT_KEYS[tracker]) if tracker in PROJECT_KEYS else None
    run = config.get(RUN_NAME_KEYS[tracker]) if tracker in RUN_NAME_KEYS else None
    names = {"project": str(project) if project else None, "run": str(run) if run else None}
    output = Path(str(config.get("output_dir") or workdir))
    if tracker == "tensorboard":
        folder = environ.get("TENSORBOARD_LOGGING_DIR") or str(output / "runs")
        return TrackerPlace(tracker, folder, note="event files in a folder per start")
    if tracker == "mlflow":
        uri = environ.get("MLFLOW_TRACKING_URI") or str(config.get("mlflow_tracking_uri") or "")
        where = _path_of(uri) if uri else str(workdir / MLFLOW_FOLDER)
        return TrackerPlace(tracker, where, **names)
    if tracker == "trackio":
        space = config.get("trackio_space_id")
        if space:
            return TrackerPlace(tracker, f"https://huggingface.co/spaces/{space}", **names)
        store = environ.get("TRACKIO_DIR") or str(_huggingface_home(environ) / "trackio")
        return TrackerPlace(tracker, store, note="`trackio show` opens it", **names)
    mode = str(config.get("wandb_mode") or environ.get("WANDB_MODE") or "online")
    folder = str(Path(environ.get("WANDB_DIR") or workdir) / "wandb")
    if mode == "offline":
        why = "" if environ.get("WANDB_MODE") else ", no WANDB_API_KEY in the environment"
        return TrackerPlace(tracker, folder, note=f"offline{why}; `wandb sync` uploads it", **names)
    if mode == "disabled":
        return TrackerPlace(tracker, "nowhere", note="wandb_mode is disabled", **names)
    entity = config.get("wandb_entity") or environ.get("WANDB_ENTITY")
    url = f"https://wandb.ai/{entity}/{project}" if entity else "https://wandb.ai"
    return TrackerPlace(tracker, url, note=f"online; a local copy in {folder}", **names)


def tracker_places(
    config: Mapping[str, Any], environ: Mapping[str, str], workdir: Path
) -> list[TrackerPlace]:
    """Where each tracker the config switches on records this run."""
    return [_place(tracker, config, environ, workdir) for tracker in tracked_by(config)]
