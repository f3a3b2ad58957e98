"""Every run under runs/ and in the user's runs index: find one by name, summarise each for
`vlm-tui runs`.

Only reads run folders. A run whose status is not final but whose supervisor is gone (the node
rebooted, someone killed it) reads as "lost": nothing will ever record its end.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from vlm_tui.core.errors import UserError
from vlm_tui.core.records.command_file import read_command, recorded_topology
from vlm_tui.core.records.folder import (
    RUNS_FOLDER,
    TERMINAL_STATES,
    RunPaths,
    runtime_s,
    utc_now,
)
from vlm_tui.core.records.status_file import read_status
from vlm_tui.core.records.values import finite, whole
from vlm_tui.core.runs.control import supervisor_alive
from vlm_tui.core.runs.user_index import IndexedRun
from vlm_tui.core.text.numbers import clock, loss_text
from vlm_tui.core.text.table import aligned

# The state of an indexed run whose folder no longer holds its record.
GONE = "gone"


@dataclass(frozen=True)
class RunSummary:
    paths: RunPaths
    state: str
    exit_code: int | None
    step: int | None
    total: int | None
    first_loss: float | None
    last_loss: float | None
    runtime_s: float | None
    processes: int | None = None
    samples_per_second: float | None = None
    best_eval_loss: float | None = None

    @property
    def live(self) -> bool:
        return self.state not in TERMINAL_STATES and self.state not in ("lost", GONE)


def summarise(paths: RunPaths) -> RunSummary:
    if not paths.holds_run:
        return RunSummary(paths, GONE, None, None, None, None, None, None)
    status = read_status(paths)
    state = str(status.get("state") or "unknown")
    if state in ("starting", "running") and not supervisor_alive(status):
        state = "lost"
    progress = status.get("progress")
    if not isinstance(progress, dict):
        progress = {}
    live = state not in TERMINAL_STATES and state != "lost"
    runtime = runtime_s(status, utc_now() if live else None)

    code = status.get("exit_code")
    summary = status.get("summary")
    return RunSummary(
        paths=paths,
        state=state,
        exit_code=whole(code),
        step=whole(progress.get("step")) if progress else whole(status.get("steps")),
        total=whole(progress.get("total")) if progress else None,
        first_loss=finite(status.get("first_loss")),
        last_loss=finite(status.get("final_loss")),
        runtime_s=runtime,
        processes=recorded_topology(read_command(paths) or {}).world_size,
        samples_per_second=(
            finite(summary.get("train_samples_per_second")) if isinstance(summary, dict) else None
        ),
        best_eval_loss=finite(status.get("best_eval_loss")),
    )


def run_folders(runs_root: Path) -> list[RunPaths]:
    """Run folders (those holding a command.json or status.json), oldest first by name."""
    try:
        entries = sorted(runs_root.iterdir())
    except OSError:
        return []
    return [RunPaths(entry) for entry in entries if entry.is_dir() and RunPaths(entry).holds_run]


def started_elsewhere(runs_root: Path, indexed: Sequence[IndexedRun]) -> list[RunPaths]:
    """The indexed runs whose folder is not under `runs_root` (gone ones too), oldest first."""
    here = runs_root.resolve()
    return [one.paths for one in indexed if one.paths.root.parent != here]


def by_age(folders: Iterable[RunPaths]) -> list[RunPaths]:
    """Oldest first: run folders are named after their UTC start, wherever they are."""
    return sorted(folders, key=lambda paths: (paths.run_id, str(paths.root)))


def listed_runs(runs_root: Path, indexed: Sequence[IndexedRun]) -> list[RunPaths]:
    """`vlm-tui runs`: the runs here and every indexed run started elsewhere, oldest first."""
    return by_age([*run_folders(runs_root), *started_elsewhere(runs_root, indexed)])


def default_pool(runs_root: Path, indexed: Sequence[IndexedRun]) -> list[RunPaths]:
    """Where a command without RUN picks from: the runs here, else (none here) every indexed
    run whose folder is still there, oldest first."""
    here = run_folders(runs_root)
    if here:
        return here
    return by_age(paths for paths in started_elsewhere(runs_root, indexed) if paths.holds_run)


def find_run(runs_root: Path, query: str | None, indexed: Sequence[IndexedRun] = ()) -> RunPaths:
    """The run `query` names: a run folder path, a folder name, or a unique part of one; looked
    for under `runs_root` first, then among the `indexed` runs started elsewhere.

    Without a query: the newest live run, else the newest run (see `default_pool`). A run whose
    folder is gone is refused by name.
    """
    if query is not None and not query.strip():
        raise UserError("run", "must not be empty; `vlm-tui runs` lists the runs")
    where = f"under {runs_root}" + (" or in the runs index" if indexed else "")
    if query is None:
        pool = default_pool(runs_root, indexed)
        if not pool:
            raise UserError("run", f"no runs {where}; start one first")
        live = [paths for paths in pool if summarise(paths).live]
        return (live or pool)[-1]
    as_path = Path(query).expanduser()
    if RunPaths(as_path).holds_run:
        return RunPaths(as_path.resolve())
    matches = _matching(run_folders(runs_root), query) or _matching(
        started_elsewhere(runs_root, indexed), query
    )
    if not matches:
        raise UserError("run", f"no run matches {query!r} {where}; `vlm-tui runs` lists them")
    if len(matches) > 1:
        names = ", ".join(
            paths.run_id if is_here(paths, runs_root) else str(paths.root) for paths in matches[-3:]
        )
        raise UserError(
            "run", f"{query!r} matches {len(matches)} runs (newest: {names}); be more exact"
        )
    if not matches[0].holds_run:
        raise UserError(
            "run",
            f"{matches[0].run_id}: its folder {matches[0].root} is gone;"
            " `vlm-tui runs` lists the runs",
        )
    return matches[0]


def _matching(folders: Sequence[RunPaths], query: str) -> list[RunPaths]:
    """The folders `query` names exactly (by name or folder), else those whose name holds it."""
    as_folder = Path(query).expanduser().absolute()
    exact = [paths for paths in folders if query == paths.run_id or paths.root == as_folder]
    return exact or [paths for paths in folders if query in paths.run_id]


def is_here(paths: RunPaths, runs_root: Path) -> bool:
    return paths.root.parent.resolve() == runs_root.resolve()


def where_text(paths: RunPaths, runs_root: Path) -> str:
    """The folder a run was started in, for a listing: "here", or its path (~ for home)."""
    if is_here(paths, runs_root):
        return "here"
    started_in = paths.root.parent
    if started_in.name == RUNS_FOLDER:
        started_in = started_in.parent
    home = Path.home()
    if started_in == home or home in started_in.parents:
        return str(Path("~") / started_in.relative_to(home))
    return str(started_in)


def table_lines(summaries: Sequence[RunSummary], runs_root: Path | None = None) -> list[str]:
    """`vlm-tui runs`: one aligned row a run, oldest first; a WHERE column (the folder each run
    was started in) once a run from elsewhere than `runs_root` is among them."""
    elsewhere = runs_root is not None and any(
        not is_here(one.paths, runs_root) for one in summaries
    )
    rows = [
        (
            "RUN",
            "STATE",
            "STEPS",
            "PROCESSES",
            "SAMPLES/S",
            "FIRST LOSS",
            "LAST LOSS",
            "BEST EVAL",
            "RUNTIME",
            *(["WHERE"] if elsewhere else []),
        )
    ]
    for one in summaries:
        state = one.state if one.exit_code is None else f"{one.state} ({one.exit_code})"
        steps = (
            "-" if one.step is None else f"{one.step}/{one.total}" if one.total else str(one.step)
        )
        rows.append(
            (
                one.paths.run_id,
                state,
                steps,
                "?" if one.processes is None else str(one.processes),
                "-" if one.samples_per_second is None else f"{one.samples_per_second:.3g}",
                loss_text(one.first_loss),
                loss_text(one.last_loss),
                loss_text(one.best_eval_loss),
                clock(one.runtime_s),
                *([where_text(one.paths, runs_root)] if elsewhere and runs_root else []),
            )
        )
    return aligned(rows)
