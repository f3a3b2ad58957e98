"""The per-user runs index: written, read, shared by concurrent writers, gone folders, an
unwritable state folder; and runs found from an unrelated folder with real `vlm-tui` processes.

The real run here is a real `vlm-tui --no-ui` launch whose training cannot import axolotl (the
stand-in training stack): it ends at once, failed, with its whole record; nothing trains.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import NO_TRAINING_STACK, REPO, STATE_HOME, clean_environ, run_cli
from tests.unit.test_runs_commands import recorded
from vlm_tui.core.errors import UserError
from vlm_tui.core.records.folder import RunPaths
from vlm_tui.core.records.index_entry_file import read_index_entry
from vlm_tui.core.runs.run_index import GONE, find_run, listed_runs, summarise, table_lines
from vlm_tui.core.runs.user_index import entries_folder, indexed_runs, record, state_folder


def state_env(state: Path) -> dict[str, str]:
    return {STATE_HOME: str(state), "HOME": str(state.parent)}


def test_a_recorded_run_is_read_back_once_with_its_folder_and_host(tmp_path: Path) -> None:
    env = state_env(tmp_path / "state")
    paths = recorded(tmp_path / "work" / "runs", "20261124T100000Z-alpha")
    assert record(paths, env) is None
    assert record(paths, env) is None  # the same run again: the same entry, not a second
    [entry] = indexed_runs(env)
    assert entry.paths == RunPaths(paths.root.resolve())
    assert entry.host and not entry.gone
    files = sorted(path.name for path in (tmp_path / "state" / "vlm-tui" / "runs").iterdir())
    assert len(files) == 1 and files[0].startswith("20261124T100000Z-alpha-")


def test_the_state_folder_follows_the_xdg_rules(tmp_path: Path) -> None:
    home = str(tmp_path)
    default = tmp_path / ".local" / "state" / "vlm-tui"
    assert state_folder({"HOME": home}) == default
    assert state_folder({"HOME": home, STATE_HOME: ""}) == default
    assert state_folder({"HOME": home, STATE_HOME: "relative/state"}) == default
    assert state_folder({"HOME": home, STATE_HOME: "/elsewhere"}) == Path("/elsewhere/vlm-tui")
    assert entries_folder({}) is None
    assert indexed_runs({}) == []


def test_unreadable_entries_are_passed_over(tmp_path: Path) -> None:
    env = state_env(tmp_path / "state")
    paths = recorded(tmp_path / "runs", "20261124T100000Z-alpha")
    assert record(paths, env) is None
    folder = entries_folder(env)
    assert folder is not None
    (folder / "torn.json").write_text('{"folder": "/x', encoding="utf-8")
    (folder / "list.json").write_text("[1, 2]", encoding="utf-8")
    (folder / "relative.json").write_text('{"folder": "runs/x"}', encoding="utf-8")
    (folder / ".alpha.json.1234.tmp").write_text("{", encoding="utf-8")
    assert [one.paths.run_id for one in indexed_runs(env)] == ["20261124T100000Z-alpha"]


WRITER = """
import sys
from pathlib import Path
from vlm_tui.core.records.folder import RunPaths
from vlm_tui.core.runs.user_index import record
state, runs, writer, count = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
env = {"XDG_STATE_HOME": state}
for number in range(count):
    root = runs / f"20261124T100000Z-w{writer}-{number}"
    root.mkdir(parents=True)
    (root / "status.json").write_text("{}")
    assert record(RunPaths(root), env) is None
"""


def test_concurrent_writers_lose_no_entry_and_readers_never_see_half_a_one(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    writers, each = 6, 40
    # Writers in separate folders, as runs started at once on several nodes would be, and two
    # in the same one.
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                WRITER,
                str(state),
                str(tmp_path / f"node{min(writer, 4)}" / "runs"),
                str(writer),
                str(each),
            ],
            env=clean_environ(),
        )
        for writer in range(writers)
    ]
    folder = entries_folder({STATE_HOME: str(state)})
    assert folder is not None
    while any(process.poll() is None for process in processes):
        for entry in folder.glob("*.json") if folder.is_dir() else []:
            data = read_index_entry(entry)
            if data is not None or entry.exists():  # renamed over between glob and read: fine
                assert data is not None, entry.name
    assert [process.wait() for process in processes] == [0] * writers
    found = indexed_runs({STATE_HOME: str(state)})
    assert len(found) == writers * each
    assert len({one.paths.root for one in found}) == writers * each
    assert not any(one.gone for one in found)
    assert sorted(path.name for path in folder.iterdir() if path.suffix != ".json") == []


def test_a_gone_folder_is_listed_as_gone_and_refused_by_name(tmp_path: Path) -> None:
    env = state_env(tmp_path / "state")
    here = tmp_path / "here" / "runs"
    local = recorded(here, "20261124T120000Z-local")
    kept = recorded(tmp_path / "project" / "runs", "20261124T100000Z-kept")
    deleted = recorded(tmp_path / "project" / "runs", "20261124T110000Z-deleted")
    for paths in (local, kept, deleted):
        assert record(paths, env) is None
    shutil.rmtree(deleted.root)
    indexed = indexed_runs(env)
    assert [one.gone for one in indexed] == [False, True, False]
    listed = listed_runs(here, indexed)  # the run here once, not twice; oldest first
    assert [paths.run_id for paths in listed] == [
        "20261124T100000Z-kept",
        "20261124T110000Z-deleted",
        "20261124T120000Z-local",
    ]
    summaries = [summarise(paths) for paths in listed]
    assert summaries[1].state == GONE and not summaries[1].live
    lines = table_lines(summaries, here)
    assert lines[0].split()[-1] == "WHERE"
    assert lines[1].split()[1] == "finished" and lines[1].endswith(str(tmp_path / "project"))
    assert lines[2].split()[1] == GONE and lines[2].endswith(str(tmp_path / "project"))
    assert lines[3].endswith("  here")
    assert find_run(here, "kept", indexed) == RunPaths(kept.root.resolve())
    with pytest.raises(UserError, match=r"20261124T110000Z-deleted: its folder .* is gone"):
        find_run(here, "deleted", indexed)
    with pytest.raises(UserError, match="is gone"):
        find_run(here, str(deleted.root), indexed)
    # Without RUN: the runs here; with none here, the newest indexed run still there.
    assert find_run(here, None, indexed) == local
    assert find_run(tmp_path / "empty" / "runs", None, indexed).run_id == "20261124T120000Z-local"
    shutil.rmtree(local.root)
    assert find_run(tmp_path / "empty" / "runs", None, indexed).run_id == "20261124T100000Z-kept"


def test_a_name_here_wins_over_the_same_name_elsewhere(tmp_path: Path) -> None:
    env = state_env(tmp_path / "state")
    here = tmp_path / "here" / "runs"
    local = recorded(here, "20261124T100000Z-alpha")
    other = recorded(tmp_path / "other" / "runs", "20261124T100000Z-alpha")
    assert record(other, env) is None
    indexed = indexed_runs(env)
    assert find_run(here, "alpha", indexed) == local
    assert find_run(tmp_path / "third" / "runs", "alpha", indexed).root == other.root.resolve()
    assert record(local, env) is None
    with pytest.raises(UserError, match="matches 2 runs"):
        find_run(tmp_path / "third" / "runs", "alpha", indexed_runs(env))


def test_an_unwritable_state_folder_is_one_warning_and_the_run_goes_on(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the state folder would be", encoding="utf-8")
    paths = recorded(tmp_path / "runs", "20261124T100000Z-alpha")
    warning = record(paths, {STATE_HOME: str(blocker)})
    assert warning is not None and warning.startswith("runs index not written in ")
    assert "\n" not in warning
    assert record(paths, {}) == "runs index not written: no HOME or XDG_STATE_HOME to keep it in"
    assert indexed_runs({STATE_HOME: str(blocker)}) == []
    # A real dry run with it: the run folder is written, the warning is its one extra line.
    done = run_cli(
        ["--no-ui", "--dry-run", "--dataset_name", "owner/data", "--output_model_name", "m"],
        tmp_path,
        clean_environ({STATE_HOME: str(blocker), "VLM_TUI_CACHE_DIR": str(tmp_path / "c")}),
    )
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stdout.splitlines() if "runs index not written" in line]
    assert len(warnings) == 1, done.stdout
    assert "Traceback" not in done.stdout + done.stderr
    assert len(list((tmp_path / "runs").iterdir())) == 2


def test_a_run_started_in_one_folder_is_listed_attached_and_gone_from_another(
    tmp_path: Path,
) -> None:
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    project.mkdir()
    elsewhere.mkdir()
    env = clean_environ({"VLM_TUI_CACHE_DIR": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"})
    # The stand-in training stack: the training fails at its first import, so the run ends now.
    env["PYTHONPATH"] = os.pathsep.join([str(NO_TRAINING_STACK), str(REPO)])
    started = run_cli(
        ["--no-ui", "--skip-check", "--dataset_name", "owner/data", "--output_model_name", "far"],
        project,
        env,
    )
    assert started.returncode == 1, started.stdout + started.stderr
    [run] = (project / "runs").iterdir()

    listing = run_cli(["runs"], elsewhere, env)
    assert listing.returncode == 0, listing.stderr
    header, row = listing.stdout.splitlines()
    assert header.split()[-1] == "WHERE"
    assert row.split()[:3] == [run.name, "failed", "(1)"]
    assert row.endswith(f"  {project}")

    attached = run_cli(["attach", "far", "--no-ui"], elsewhere, env)
    assert attached.returncode == 1, attached.stdout + attached.stderr
    assert f"[vlm-tui] attached to {run}" in attached.stdout
    assert "[vlm-tui] failed (exit 1)" in attached.stdout
    assert "axolotl is blocked" in attached.stdout

    shutil.rmtree(run)
    listing = run_cli(["runs"], elsewhere, env)
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout.splitlines()[1].split()[:2] == [run.name, GONE]
    for command in (
        ["attach", "far", "--no-ui"],
        ["stop", "far"],
        ["try", "far"],
        ["merge", "far"],
    ):
        refused = run_cli(command, elsewhere, env)
        assert refused.returncode == 2, (command, refused.stdout + refused.stderr)
        assert refused.stderr.strip() == (
            f"vlm-tui: error: RUN: {run.name}: its folder {run} is gone;"
            " `vlm-tui runs` lists the runs"
        ), command
    assert sorted(path.name for path in elsewhere.iterdir()) == []
