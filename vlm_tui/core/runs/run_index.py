"""Every run under runs/: find one by name, summarise each for `vlm-tui runs`.

Only reads run folders. A run whose status is not final but whose supervisor is gone (the node
rebooted, someone killed it) reads as "lost": nothing will ever record its end.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from vlm_tui.core.errors import UserError
from vlm_tui.core.records.command_file import read_command, recorded_topology
from vlm_tui.core.records.folder import TERMINAL_STATES, RunPaths, runtime_s, utc_now
from vlm_tui.core.records.status_file import read_status
from vlm_tui.core.records.values import finite, whole
from vlm_tui.core.runs.control import supervisor_alive
from vlm_tui.core.text.numbers import clock, loss_text
from vlm_tui.core.text.table import aligned


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
        return self.state not in TERMINAL_STATES and self.state != "lost"


def summarise(paths: RunPaths) -> RunSummary:
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
    return [
        RunPaths(entry)
        for entry in entries
        if entry.is_dir()
        and ((entry / "status.json").exists() or (entry / "command.json").exists())
    ]


def find_run(runs_root: Path, query: str | None) -> RunPaths:
    """The run `query` names: a run folder path, a folder name, or a unique part of one.

    Without a query: the newest live run, else the newest run.
    """
    if query is not None and not query.strip():
        raise UserError("run", "must not be empty; `vlm-tui runs` lists the runs")
    if query is not None:
        as_path = Path(query).expanduser()
        if RunPaths(as_path).status.exists() or RunPaths(as_path).command.exists():
            return RunPaths(as_path.resolve())
    folders = run_folders(runs_root)
    if not folders:
        raise UserError("run", f"no runs under {runs_root}; start one first")
    if query is None:
        live = [paths for paths in folders if summarise(paths).live]
        return (live or folders)[-1]
    exact = [paths for paths in folders if paths.run_id == query]
    if exact:
        return exact[0]
    matches = [paths for paths in folders if query in paths.run_id]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise UserError(
            "run", f"no run matches {query!r} under {runs_root}; `vlm-tui runs` lists them"
        )
    names = ", ".join(paths.run_id for paths in matches[-3:])
    raise UserError(
        "run", f"{query!r} matches {len(matches)} runs (newest: {names}); be more exact"
    )


def table_lines(summaries: Sequence[RunSummary]) -> list[str]:
    """`vlm-tui runs`: one aligned row a run, oldest first."""
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
            )
        )
    return aligned(rows)
