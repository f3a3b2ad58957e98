"""The dataset check on a large local dataset: `vlm-tui check-data` on N rows, N images.

A scratch folder gets N small PNG files (64x64, each its own file, as real datasets ship them)
and a JSON Lines file of N LLaVA-format rows naming them by relative path, the layout most
public VLM datasets have. Then `vlm-tui check-data` runs on it as a user runs it, in a fresh
process, `--rounds` times after one untimed warm-up round (a warm file cache, as on a second
look at a dataset just downloaded). Timed as wall clock from spawn to exit.

    python -m bench.dataset_check [--rows 100000] [--rounds 3] [--write-markdown BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.ui_flood import machine_lines, write_section
from harness.images import tiny_png

SECTION_TITLE = "## Dataset check"
MODULE = "bench.dataset_check"
TARGET_S = 10.0
TARGET_ROWS = 100_000


def build(folder: Path, rows: int) -> Path:
    """N images under folder/images and folder/train.jsonl naming them (LLaVA format)."""
    images = folder / "images"
    images.mkdir(parents=True)
    # 256 colours are enough: the check reads each file, whatever it holds.
    pictures = [tiny_png(seed) for seed in range(256)]
    lines = []
    for number in range(rows):
        name = f"{number:06d}.png"
        (images / name).write_bytes(pictures[number % 256])
        row = {
            "id": str(number),
            "image": f"images/{name}",
            "conversations": [
                {"from": "human", "value": "<image>\nWhat colour is this square?"},
                {"from": "gpt", "value": f"Colour number {number % 256}."},
            ],
        }
        lines.append(json.dumps(row))
    dataset = folder / "train.jsonl"
    dataset.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return dataset


def check_once(dataset: Path) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "vlm_tui", "check-data", str(dataset)],
        cwd=dataset.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    took = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"check-data failed: {done.stderr[-500:]}")
    return took, done.stdout.splitlines()[0]


def measure(rows: int, rounds: int) -> tuple[list[float], str, float]:
    with tempfile.TemporaryDirectory(prefix="vlm-tui-bench-data-") as scratch:
        start = time.perf_counter()
        dataset = build(Path(scratch), rows)
        built_s = time.perf_counter() - start
        check_once(dataset)  # warm-up: interpreter, imports, the file cache
        seconds = []
        summary = ""
        for _ in range(rounds):
            took, summary = check_once(dataset)
            seconds.append(took)
    return seconds, summary.split(": ", 1)[-1], built_s


def section(rows: int, seconds: list[float], summary: str, built_s: float) -> str:
    median = statistics.median(seconds)
    met = "met" if rows >= TARGET_ROWS and median <= TARGET_S else "missed"
    if rows < TARGET_ROWS:
        met = f"not judged ({rows:,} rows, the target is about {TARGET_ROWS:,})"
    lines = [
        SECTION_TITLE,
        "",
        f"Command: `python -m {MODULE} --rows {rows} --rounds {len(seconds)}`",
        "",
        *machine_lines(),
        "",
        f"`vlm-tui check-data` on {rows:,} LLaVA-format rows naming {rows:,} PNG files (64x64,"
        " relative paths): every row read and converted, every image opened and its header read."
        f" Building the scratch dataset took {built_s:.1f} s (not timed). One warm-up round, then"
        f" {len(seconds)} timed rounds, each a fresh process.",
        "",
        f"- wall time: median **{median:.2f} s** (min {min(seconds):.2f}, max {max(seconds):.2f});"
        f" {rows / median:,.0f} rows/s",
        f"- what it printed: {summary}",
        f"- goal: at most {TARGET_S:.0f} s for {TARGET_ROWS:,} rows and images on 2 cores:"
        f" **{met}**",
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__)
    parser.add_argument("--rows", type=int, default=TARGET_ROWS)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--write-markdown", type=Path, metavar="FILE")
    args = parser.parse_args(argv)
    seconds, summary, built_s = measure(max(args.rows, 1), max(args.rounds, 1))
    text = section(args.rows, seconds, summary, built_s)
    print(text)
    if args.write_markdown is not None:
        write_section(args.write_markdown, text, SECTION_TITLE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
