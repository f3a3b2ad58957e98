"""Tokens per row, image tokens included, against sequence_len: counted before launch.

axolotl's multimodal collator never truncates a row to sequence_len, so a row longer than it
trains at its full length: more memory than the setting suggests, and no word about it. The
count runs the model's own processor in a child (vlm_tui/training/token_count.py, beside the
schema check), on every row or an even sample of 2,000, and is said as a distribution. Rows
over sequence_len are a warning, not a refusal: they train, but the user should know, and gets
the value that covers them.
"""

from __future__ import annotations

import statistics
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from vlm_tui.core.training_child import finish_child, start_child

COUNT_TIMEOUT_SECONDS = 600


@dataclass(frozen=True)
class TokenLengths:
    rows: int  # in the dataset
    lengths: tuple[int, ...]  # of the rows counted (all, or an even sample), sorted
    # Rows the processor could not take: (index among the rows given, error).
    failed: tuple[tuple[int, str], ...] = ()

    @property
    def counted(self) -> int:
        return len(self.lengths) + len(self.failed)

    def failure(self, where: Sequence[str]) -> str | None:
        """The warning for rows the processor could not take, each named by `where[index]`."""
        if not self.failed:
            return None
        named = [
            f"{where[index] if index < len(where) else f'row {index + 1}'} ({error})"
            for index, error in self.failed[:3]
        ]
        more = f" and {len(self.failed) - 3} more" if len(self.failed) > 3 else ""
        return (
            f"warning: the model's processor could not read {len(self.failed)} of the"
            f" {self.counted} rows counted: {'; '.join(named)}{more}; the training fails"
            " when it reaches such a row"
        )

    def percentile(self, share: float) -> int:
        return self.lengths[min(len(self.lengths) - 1, int(share * len(self.lengths)))]

    def over(self, limit: int) -> int:
        return sum(length > limit for length in self.lengths)

    def line(self) -> str:
        if not self.lengths:
            return f"tokens per row: none of the {self.counted} rows counted could be read"
        which = "every row" if self.counted == self.rows else f"an even sample of {self.counted}"
        return (
            f"tokens per row (images included, {which} of {self.rows}): min {self.lengths[0]},"
            f" median {int(statistics.median(self.lengths))}, 95% {self.percentile(0.95)},"
            f" max {self.lengths[-1]}"
        )

    def warning(self, sequence_len: int) -> str | None:
        """What to say when rows are longer than sequence_len (None when none are)."""
        if not self.lengths:
            return None
        longer = self.over(sequence_len)
        if not longer:
            return None
        covering = suggested_sequence_len(self.lengths[-1])
        return (
            f"warning: {longer} of {self.counted} rows counted are longer than sequence_len"
            f" {sequence_len} (up to {self.lengths[-1]} tokens); axolotl does not cut multimodal"
            f" rows, so they train at full length and take more memory than sequence_len"
            f" suggests; --sequence_len {covering} covers them"
        )

    def record(self, sequence_len: int) -> dict[str, int]:
        """For status.json."""
        if not self.lengths:
            return {"counted": self.counted, "unreadable": len(self.failed)}
        return {
            "counted": self.counted,
            "min": self.lengths[0],
            "median": int(statistics.median(self.lengths)),
            "p95": self.percentile(0.95),
            "max": self.lengths[-1],
            "over_sequence_len": self.over(sequence_len),
            "unreadable": len(self.failed),
        }


def suggested_sequence_len(longest: int) -> int:
    """The longest row rounded up to a multiple of 64."""
    return -(-longest // 64) * 64


def start_count(model: str, dataset: Path, environ: Mapping[str, str]) -> subprocess.Popen[str]:
    """The count, started in a child (it loads the processor: seconds)."""
    return start_child("vlm_tui.training.token_count", [model, str(dataset)], environ)


def finish_count(child: subprocess.Popen[str]) -> TokenLengths | str:
    """The lengths, or why there are none (the count is advice: its failure stops nothing)."""
    result = finish_child(child, COUNT_TIMEOUT_SECONDS)
    if isinstance(result, str):
        return f"tokens per row not counted: {result}"
    lengths = tuple(sorted(int(length) for length in result.get("lengths", [])))
    failed = tuple((int(index), str(error)) for index, error in result.get("failed", []))
    if not lengths and not failed:
        return "tokens per row not counted: no rows"
    return TokenLengths(int(result.get("rows", len(lengths))), lengths, failed)
