"""Single process or distributed, decided from the environment exactly as the guide states it.

The guide's rule: any of MASTER_ADDR, RANK, WORLD_SIZE, LOCAL_RANK present (and non-empty)
means a distributed launch. The lines printed here are the guide's, character for character,
so users can match them against its Verification section.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

GUIDE_VARIABLES = ("MASTER_ADDR", "RANK", "WORLD_SIZE", "LOCAL_RANK")
SINGLE_LINE = "🖥️  Single GPU mode - running without distributed setup"
DISTRIBUTED_LINE = "🌐 Detected distributed environment - using accelerate launch"


@dataclass(frozen=True)
class Detection:
    distributed: bool
    # The guide's variables that are set, in the guide's order, with their values.
    variables: tuple[tuple[str, str], ...] = ()


def detect(environ: Mapping[str, str]) -> Detection:
    present = tuple(
        (name, environ[name]) for name in GUIDE_VARIABLES if environ.get(name, "").strip()
    )
    return Detection(distributed=bool(present), variables=present)


def detection_lines(detection: Detection) -> list[str]:
    if not detection.distributed:
        return [SINGLE_LINE]
    return [DISTRIBUTED_LINE] + [f"  {name}: {value}" for name, value in detection.variables]


def command_line(shown_command: str) -> str:
    return f"Training command: {shown_command}"
