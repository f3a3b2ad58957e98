"""Start-up: how long vlm-tui takes to answer, against the tools it wraps.

Each command runs `--repeats` times (at least 5), interleaved round by round so that the
machine's load drifts over all of them alike, in a fresh process with a cold interpreter but a
warm file cache (one untimed warm-up round first). Timed as wall clock from spawn to exit; the
TUI's first frame is timed from spawn to the first screen it draws on a pseudo-terminal.

    python -m bench.startup [--repeats 5] [--against TREE] [--write-markdown BENCHMARKS.md]

`--against TREE` (a checkout of vlm-tui, e.g. `git worktree add TREE <commit>`) also times
`--help` and the dry run of that code, in the same rounds: a change's cost to start-up, side by
side.
"""

from __future__ import annotations

import argparse
import os
import pty
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.ui_flood import machine_lines, write_section

SECTION_TITLE = "## Start-up"
MODULE = "bench.startup"
BIN = Path(sys.executable).parent
# The dry run's targets: under 0.3 s, and at least 10x faster than accelerate's help.
TARGET_DRY_RUN_S = 0.3
TARGET_RATIO = 10.0
# What the TUI draws in its first frame: the setup screen's header title.
FIRST_FRAME_TEXT = b"vlm-tui"
FRAME_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Timing:
    name: str
    command: str
    seconds: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def _run(argv: Sequence[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, check=False)
    took = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr.decode()[-500:]}")
    return took


def first_frame_s(argv: Sequence[str], cwd: Path, env: dict[str, str]) -> float:
    """Spawn the TUI on a pseudo-terminal; seconds until its first frame shows the title."""
    master, slave = pty.openpty()
    start = time.perf_counter()
    process = subprocess.Popen(
        argv, cwd=cwd, env=env, stdin=slave, stdout=slave, stderr=slave, start_new_session=True
    )
    os.close(slave)
    seen = b""
    try:
        while time.perf_counter() - start < FRAME_TIMEOUT_S:
            ready, _, _ = select.select([master], [], [], 0.01)
            if ready:
                try:
                    seen += os.read(master, 65536)
                except OSError:
                    break
                if FIRST_FRAME_TEXT in seen:
                    return time.perf_counter() - start
        raise RuntimeError(f"no first frame within {FRAME_TIMEOUT_S:.0f} s: {seen[-300:]!r}")
    finally:
        process.kill()
        process.wait()
        os.close(master)


REPO = Path(__file__).resolve().parent.parent
BEFORE = " (before)"


def workloads(
    scratch: Path, against: Path | None = None
) -> list[tuple[str, str, Callable[[], float]]]:
    """(name, command as shown, timed call) for each command measured."""
    env = {
        **os.environ,
        "VLM_TUI_CACHE_DIR": str(scratch / "cache"),
        "HF_HUB_OFFLINE": "1",
        "AXOLOTL_DO_NOT_TRACK": "1",
        "TERM": "xterm-256color",
        "COLUMNS": "140",
        "LINES": "45",
    }
    work = scratch / "work"
    work.mkdir()
    vlm = [sys.executable, "-m", "vlm_tui"]
    # This checkout's code, whichever checkout the environment was installed from.
    env["PYTHONPATH"] = str(REPO)

    def timed(argv: list[str], code: Path = REPO) -> Callable[[], float]:
        return lambda: _run(argv, work, {**env, "PYTHONPATH": str(code)})

    found: list[tuple[str, str, Callable[[], float]]] = [
        ("vlm-tui --help", "vlm-tui --help", timed([*vlm, "--help"])),
        (
            "vlm-tui --no-ui --dry-run --demo",
            "vlm-tui --no-ui --dry-run --demo",
            timed([*vlm, "--no-ui", "--dry-run", "--demo"]),
        ),
        (
            "TUI first frame",
            "vlm-tui --demo (until the first frame)",
            lambda: first_frame_s([*vlm, "--demo"], work, env),
        ),
    ]
    if against is not None:
        found.insert(
            1,
            (
                "vlm-tui --help" + BEFORE,
                "vlm-tui --help" + BEFORE,
                timed([*vlm, "--help"], against),
            ),
        )
        found.insert(
            3,
            (
                "vlm-tui --no-ui --dry-run --demo" + BEFORE,
                "vlm-tui --no-ui --dry-run --demo" + BEFORE,
                timed([*vlm, "--no-ui", "--dry-run", "--demo"], against),
            ),
        )
    for tool, argv in (
        ("accelerate launch --help", ["accelerate", "launch", "--help"]),
        ("axolotl --help", ["axolotl", "--help"]),
    ):
        path = BIN / argv[0] if (BIN / argv[0]).exists() else shutil.which(argv[0])
        if path is not None:
            found.append((tool, tool, timed([str(path), *argv[1:]])))
    return found


def measure(repeats: int, *, warm_up: bool = True, against: Path | None = None) -> list[Timing]:
    with tempfile.TemporaryDirectory(prefix="vlm-tui-startup-") as folder:
        runs = workloads(Path(folder), against)
        for _, _, call in runs if warm_up else []:
            call()  # warm-up: the file cache, not the interpreter
        seconds: dict[str, list[float]] = {name: [] for name, _, _ in runs}
        for round_number in range(repeats):
            # Every other round in reverse: no command always runs right after the same one
            # (the first one of a round came after the heaviest tool of the last).
            order = runs if round_number % 2 == 0 else runs[::-1]
            for name, _, call in order:
                seconds[name].append(call())
        return [Timing(name, shown, seconds[name]) for name, shown, _ in runs]


def table(timings: Sequence[Timing]) -> str:
    rows = ["| command | median s | min s | max s | runs |", "|---|---:|---:|---:|---:|"]
    for one in timings:
        rows.append(
            f"| `{one.command}` | {one.median:.3f} | {min(one.seconds):.3f} "
            f"| {max(one.seconds):.3f} | {len(one.seconds)} |"
        )
    return "\n".join(rows)


def verdict(timings: Sequence[Timing]) -> str:
    by_name = {one.name: one for one in timings}
    dry = by_name["vlm-tui --no-ui --dry-run --demo"].median
    parts = [
        f"Dry run under {TARGET_DRY_RUN_S} s: **{'met' if dry < TARGET_DRY_RUN_S else 'missed'}**"
        f" ({dry:.3f} s)."
    ]
    accelerate = by_name.get("accelerate launch --help")
    if accelerate is not None:
        ratio = accelerate.median / dry
        met = "met" if ratio >= TARGET_RATIO else "missed"
        parts.append(
            f"At least {TARGET_RATIO:.0f}x faster than `accelerate launch --help`: **{met}** "
            f"({ratio:.1f}x, medians measured side by side)."
        )
    axolotl = by_name.get("axolotl --help")
    if axolotl is not None:
        parts.append(f"`axolotl --help` takes {axolotl.median / dry:.1f}x the dry run.")
    for name in ("vlm-tui --help", "vlm-tui --no-ui --dry-run --demo"):
        before = by_name.get(name + BEFORE)
        if before is not None and name in by_name:
            ratio = by_name[name].median / before.median
            parts.append(f"`{name}` now takes {ratio:.2f}x what it took before.")
    return " ".join(parts)


METHOD = (
    "Method: each command runs in a fresh process, rounds interleaved (every command once per "
    "round, every other round in reverse order) after one untimed warm-up round, so the file "
    "cache is warm and load drift falls on all alike; wall clock from spawn to exit. The "
    "TUI's first frame is timed from spawn to the first bytes on a pseudo-terminal that "
    "contain its title. Ratios are of medians taken in the same run."
)


def commit_of(tree: Path) -> str:
    """The commit a checkout is at, for the section to name what "before" was."""
    done = subprocess.run(
        ["git", "-C", str(tree), "log", "-1", "--format=%h %s"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip()[:100] or str(tree)


def section(timings: Sequence[Timing], repeats: int, before: str | None = None) -> str:
    against = f" --against TREE` (TREE at {before})" if before else "`"
    return "\n".join(
        [
            SECTION_TITLE,
            "",
            METHOD,
            "",
            f"`python -m {MODULE} --repeats {repeats}{against}. Machine:",
            "",
            *machine_lines(),
            "",
            table(timings),
            "",
            verdict(timings),
            "",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--write-markdown", type=Path, metavar="FILE")
    parser.add_argument("--against", type=Path, metavar="TREE", help="time this checkout too")
    args = parser.parse_args(argv)
    timings = measure(max(args.repeats, 1), against=args.against)
    before = commit_of(args.against) if args.against is not None else None
    text = section(timings, args.repeats, before)
    print(text)
    if args.write_markdown is not None:
        write_section(args.write_markdown, text, SECTION_TITLE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
