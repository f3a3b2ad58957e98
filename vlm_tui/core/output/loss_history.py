"""A run's loss curve as the monitor keeps it: raw, smoothed and evaluation losses, the
learning rate, folded when long. No Textual here: the monitor's worker keeps one and hands the
chart widget finished `LossSeries`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

Point = tuple[float, float]
SMOOTHING_WEIGHT = 0.9


# Points kept per series: past 2 x KEEP_POINTS a series is folded to its envelope (per-bucket
# min and max): still more points than the dot columns of a wide terminal.
KEEP_POINTS = 600


def _folded(points: list[Point]) -> list[Point]:
    return points if len(points) <= 2 * KEEP_POINTS else downsample(points, KEEP_POINTS // 2)


class Smoother:
    """Exponential moving average, debiased like TensorBoard's smoothing, one point at a time.

    Without debiasing the average starts at zero and the first points would sit far below
    the data; dividing by `1 - weight**n` makes the first output equal the first input.
    """

    def __init__(self, weight: float = SMOOTHING_WEIGHT) -> None:
        if not 0.0 <= weight < 1.0:
            raise ValueError(f"smoothing weight must be in [0, 1), got {weight}")
        self.weight = weight
        self._average = 0.0
        self._bias = 1.0  # weight**n, kept as a running product instead of a power each step

    def add(self, value: float) -> float:
        self._average = self._average * self.weight + (1.0 - self.weight) * value
        self._bias *= self.weight
        return self._average / (1.0 - self._bias)


def smooth(values: Sequence[float], weight: float = SMOOTHING_WEIGHT) -> list[float]:
    """A whole series through one Smoother (what LossHistory does as points arrive)."""
    smoother = Smoother(weight)
    return [smoother.add(value) for value in values]


def downsample(points: Sequence[Point], buckets: int) -> list[Point]:
    """Reduce `points` to at most `2 * buckets + 2` while keeping the curve's envelope.

    Each x bucket keeps its lowest and highest point, so spikes survive; the first and last
    points are always kept so the chart spans the whole run.
    """
    count = len(points)
    if buckets < 1 or count <= 2 * buckets:
        return list(points)
    xs = [x for x, _ in points]
    x_low = min(xs)
    x_span = max(xs) - x_low
    lowest: list[int] = [-1] * buckets
    highest: list[int] = [-1] * buckets
    for index, (x, y) in enumerate(points):
        if x_span > 0:
            bucket = min(int((x - x_low) / x_span * buckets), buckets - 1)
        else:
            # Every x equal: bucket by position so the reduction still happens.
            bucket = index * buckets // count
        low = lowest[bucket]
        if low < 0 or y < points[low][1]:
            lowest[bucket] = index
        high = highest[bucket]
        if high < 0 or y > points[high][1]:
            highest[bucket] = index
    kept = {0, count - 1, *lowest, *highest}
    kept.discard(-1)
    return [points[index] for index in sorted(kept)]


@dataclass(frozen=True, slots=True)
class LossSeries:
    """What the chart draws: raw and smoothed loss, learning rate, and the lowest loss."""

    losses: tuple[Point, ...] = ()
    smoothed: tuple[Point, ...] = ()
    learning_rates: tuple[Point, ...] = ()
    lowest: Point = (0.0, 0.0)
    # Evaluation losses (a point per evaluation) and the lowest of them.
    evals: tuple[Point, ...] = ()
    best_eval: Point | None = None


class LossHistory:
    """A run's loss curve, kept small: smoothed as points arrive, folded when long.

    The cost of `extend` is that of the new points: smoothing is carried forward one point at a
    time, and a series longer than 2 x KEEP_POINTS is folded down to its envelope, so a run of
    a million steps costs as little to keep as one of a thousand. No Textual here: the monitor's
    worker thread keeps one and hands the screen finished `LossSeries`.
    """

    def __init__(self) -> None:
        self._losses: list[Point] = []
        self._smoothed: list[Point] = []
        self._learning_rates: list[Point] = []
        self._lowest: Point = (0.0, 0.0)
        self._evals: list[Point] = []
        self._best_eval: Point | None = None
        self._smoother = Smoother()

    def extend(
        self,
        losses: Sequence[tuple[int, float]],
        learning_rates: Sequence[tuple[int, float]] = (),
        evals: Sequence[tuple[int, float]] = (),
    ) -> None:
        """Add points logged after the ones already kept (non-finite values are left out)."""
        for step, loss in evals:
            if math.isfinite(loss):
                point = (float(step), float(loss))
                self._evals.append(point)
                if self._best_eval is None or point[1] < self._best_eval[1]:
                    self._best_eval = point
        self._evals = _folded(self._evals)
        for step, loss in losses:
            if not math.isfinite(loss):
                continue
            point = (float(step), float(loss))
            self._losses.append(point)
            self._smoothed.append((point[0], self._smoother.add(point[1])))
            if len(self._losses) == 1 or point[1] < self._lowest[1]:
                self._lowest = point
        self._learning_rates.extend(
            (float(step), float(rate)) for step, rate in learning_rates if math.isfinite(rate)
        )
        self._losses = _folded(self._losses)
        self._smoothed = _folded(self._smoothed)
        self._learning_rates = _folded(self._learning_rates)

    def series(self) -> LossSeries:
        """A copy to draw from, safe to hand to another thread."""
        return LossSeries(
            tuple(self._losses),
            tuple(self._smoothed),
            tuple(self._learning_rates),
            self._lowest,
            tuple(self._evals),
            self._best_eval,
        )
