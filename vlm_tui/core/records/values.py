"""The one reading of a number from a run-folder record: JSON gives any type, a reader wants one.

A record written by another version, edited by hand or cut short must never crash a reader, so
every field is read through these: a wrong type reads as missing.
"""

from __future__ import annotations

import math

# metrics.jsonl writes a non-finite metric as a string: JSON has no NaN or infinity.
NON_FINITE = ("nan", "inf", "-inf")


def whole(value: object) -> int | None:
    """An integer field (a bool is not one), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def whole_or(value: object, default: int) -> int:
    found = whole(value)
    return default if found is None else found


def finite(value: object) -> float | None:
    """A finite number, else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def metric(value: object) -> float | None:
    """A metric as metrics.jsonl holds it: a number, or "nan"/"inf"/"-inf" as a string."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if value in NON_FINITE:
        return float(str(value))
    return None


def encoded_metric(value: float | int) -> float | int | str:
    """A metric for metrics.jsonl: non-finite values as strings (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value
