"""trackers.json: where the run's trackers keep its records (folder or URL), as launched.

Written once by the launch beside command.json, only for a run with trackers; read by
`vlm-tui runs`, the monitor and `--no-ui`. A run without the file has no tracker.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from vlm_tui.core.records.folder import RunPaths, read_json, write_json_atomic

TRACKERS_NAME = "trackers.json"


@dataclass(frozen=True)
class TrackerPlace:
    """Where one tracker keeps a run's records: a folder or a URL, and what names them there."""

    tracker: str
    where: str
    project: str | None = None
    run: str | None = None
    note: str | None = None

    def line(self) -> str:
        """`mlflow: /work/mlruns (project demo, run 2026...-demo)`, as every view shows it."""
        names = [f"project {self.project}"] if self.project else []
        names += [f"run {self.run}"] if self.run else []
        names += [self.note] if self.note else []
        return f"{self.tracker}: {self.where}" + (f" ({', '.join(names)})" if names else "")


def trackers_path(paths: RunPaths) -> Path:
    return paths.root / TRACKERS_NAME


def write_trackers(paths: RunPaths, places: list[TrackerPlace]) -> None:
    write_json_atomic(trackers_path(paths), {"trackers": [asdict(place) for place in places]})


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def read_trackers(paths: RunPaths) -> list[TrackerPlace]:
    """The recorded places; [] when the run has none or the file is unreadable."""
    recorded = (read_json(trackers_path(paths)) or {}).get("trackers")
    if not isinstance(recorded, list):
        return []
    places = []
    for entry in recorded:
        if not isinstance(entry, dict):
            continue
        tracker, where = _text(entry.get("tracker")), _text(entry.get("where"))
        if tracker is None or where is None:
            continue
        places.append(
            TrackerPlace(
                tracker,
                where,
                project=_text(entry.get("project")),
                run=_text(entry.get("run")),
                note=_text(entry.get("note")),
            )
        )
    return places


def tracker_lines(paths: RunPaths) -> list[str]:
    """`tracker mlflow: ...`, one line a tracker, as the views print them."""
    return [f"tracker {place.line()}" for place in read_trackers(paths)]


def tracker_names(paths: RunPaths) -> str:
    """The run's trackers as one short word list (`tensorboard,mlflow`), `-` for none."""
    return ",".join(place.tracker for place in read_trackers(paths)) or "-"
