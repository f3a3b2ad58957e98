"""Durations and numbers as every view shows them."""

from __future__ import annotations

import math

MISSING = "-"


def clock(seconds: float | None) -> str:
    """A duration as H:MM:SS for progress lines; "?" when unknown."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "?"
    whole = round(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def duration(seconds: float | None) -> str:
    """A table's duration: tenths of a second under a minute, else H:MM:SS; "-" when unknown."""
    if seconds is None:
        return MISSING
    if seconds < 60:
        return f"{seconds:.1f} s"
    return clock(seconds)


def compact(value: float | None) -> str:
    """A rate in a few characters: 3 significant digits, thousands as "k"; "-" when unknown."""
    if value is None:
        return MISSING
    return f"{value / 1000:.1f}k" if value >= 1000 else f"{value:.3g}"


def loss_text(value: float | None) -> str:
    return MISSING if value is None else f"{value:.4g}"
