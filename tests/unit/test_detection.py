"""The guide's detection rule and its exact lines, for every environment the guide shows."""

from __future__ import annotations

import pytest

from vlm_tui.core.host.detection import (
    DISTRIBUTED_LINE,
    SINGLE_LINE,
    command_line,
    detect,
    detection_lines,
)

MASTER = "gpu-node-0.example.invalid"

GUIDE_CASES = [
    ("single GPU: no variables", {}, [SINGLE_LINE]),
    *[
        (
            f"4-node example, node {rank}",
            {
                "MASTER_ADDR": MASTER,
                "MASTER_PORT": "29500",
                "RANK": str(rank),
                "WORLD_SIZE": "4",
                "LOCAL_RANK": "0",
            },
            [
                DISTRIBUTED_LINE,
                f"  MASTER_ADDR: {MASTER}",
                f"  RANK: {rank}",
                "  WORLD_SIZE: 4",
                "  LOCAL_RANK: 0",
            ],
        )
        for rank in range(4)
    ],
    (
        "multi-GPU option 1: MASTER_ADDR, MASTER_PORT, WORLD_SIZE",
        {"MASTER_ADDR": "localhost", "MASTER_PORT": "29500", "WORLD_SIZE": "4"},
        [DISTRIBUTED_LINE, "  MASTER_ADDR: localhost", "  WORLD_SIZE: 4"],
    ),
    (
        "multi-GPU option 2: MASTER_ADDR alone",
        {"MASTER_ADDR": "localhost"},
        [DISTRIBUTED_LINE, "  MASTER_ADDR: localhost"],
    ),
    (
        "migration guide: MASTER_ADDR, RANK, WORLD_SIZE",
        {"MASTER_ADDR": "node-0.invalid", "RANK": "0", "WORLD_SIZE": "4"},
        [DISTRIBUTED_LINE, "  MASTER_ADDR: node-0.invalid", "  RANK: 0", "  WORLD_SIZE: 4"],
    ),
    ("empty values do not count", {"RANK": "", "MASTER_ADDR": "  "}, [SINGLE_LINE]),
    (
        "MASTER_PORT or NODE_RANK alone is not the guide's signal",
        {"MASTER_PORT": "29500", "NODE_RANK": "1"},
        [SINGLE_LINE],
    ),
    ("LOCAL_RANK alone is", {"LOCAL_RANK": "0"}, [DISTRIBUTED_LINE, "  LOCAL_RANK: 0"]),
]


@pytest.mark.parametrize(("case", "environ", "lines"), GUIDE_CASES, ids=[c[0] for c in GUIDE_CASES])
def test_detection_lines_match_the_guide(
    case: str, environ: dict[str, str], lines: list[str]
) -> None:
    detection = detect(environ)
    assert detection.distributed == (lines[0] == DISTRIBUTED_LINE)
    assert detection_lines(detection) == lines


def test_the_guide_lines_are_character_exact() -> None:
    # The emoji has a variation selector and two spaces follow it, as in the guide.
    assert SINGLE_LINE == "\U0001f5a5\ufe0f  Single GPU mode - running without distributed setup"
    assert (
        DISTRIBUTED_LINE == "\U0001f310 Detected distributed environment - using accelerate launch"
    )
    assert command_line("python -m axolotl.cli.train ./c.yml") == (
        "Training command: python -m axolotl.cli.train ./c.yml"
    )
