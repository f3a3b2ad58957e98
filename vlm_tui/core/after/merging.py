"""Merge a run's adapter in a child with the training stack, and say each step as it comes."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from vlm_tui.core.after.child_lines import child_lines
from vlm_tui.core.after.merge_request import MergeRequest

CHILD_MODULE = "vlm_tui.training.merge_adapter"


@dataclass(frozen=True)
class Verified:
    """The merged model, reloaded from disk, against the base model with the adapter."""

    max_abs_diff: float
    tolerance: float
    logits: int


@dataclass(frozen=True)
class Saved:
    target: str
    seconds: float


def merge(request: MergeRequest, environ: Mapping[str, str]) -> Iterator[Verified | Saved]:
    """Merge, check and save; SetupError (nothing left at the target) when any step fails."""
    for said in child_lines(CHILD_MODULE, request.child_request(), environ, "merging"):
        if "verified" in said:
            found = said["verified"]
            yield Verified(
                float(found["max_abs_diff"]), float(found["tolerance"]), int(found["logits"])
            )
        elif "saved" in said:
            yield Saved(str(said["saved"]), float(said.get("seconds", 0)))
