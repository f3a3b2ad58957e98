"""A live training-loss chart drawn with braille characters.

The monitor screen shows how the loss is going while a run trains, so this file holds both the
pure drawing code (smoothing, downsampling, rasterising series into braille cells; testable
without a terminal) and the `LossChart` widget that lays the chart out with a header and axes.
Braille gives 2x4 dots per terminal cell, enough resolution for a readable curve without a
third-party chart library.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from vlm_tui.core.output.loss_history import LossHistory, LossSeries, Point, downsample

WAITING_TEXT = "waiting for the first logged loss"

# Bit of each dot in a braille cell, indexed [dot row][dot column] (Unicode braille layout).
_DOT_BITS: tuple[tuple[int, int], ...] = ((0x01, 0x08), (0x02, 0x10), (0x04, 0x20), (0x40, 0x80))
_BRAILLE_BASE = 0x2800
# Empty cells are plain spaces: some fonts draw the blank braille character as faint dots.
_EMPTY_CELL = " "

# Below this size the axes would crowd out the curve, so only the header is shown.
_MIN_CHART_ROWS = 2
_MIN_CHART_COLUMNS = 8


@dataclass(frozen=True, slots=True)
class Series:
    """One curve to draw.

    `style` names the component class that colours it. A series with `own_scale` is scaled to
    its own y range (the learning rate is orders of magnitude below the loss) and is always
    linear; the others share the y range and follow the log-scale setting.
    """

    points: Sequence[Point]
    style: str
    own_scale: bool = False


@dataclass(frozen=True, slots=True)
class Chart:
    """A rasterised chart: `height` rows of `width` cells.

    `rows` holds the characters (a space where no dot is set) and `cell_styles` the style name
    of the series drawn last in each cell. `x_range` is the first and last x drawn. `y_range` is
    in view units (log10 under log scale), widened when flat, and is None when no shared series
    had a point to show.
    """

    rows: list[str]
    cell_styles: list[list[str | None]]
    x_range: tuple[float, float] | None
    y_range: tuple[float, float] | None
    log_scale: bool

    def row_value(self, row: int) -> float | None:
        """The shared-scale value a label on `row` stands for (top row = maximum)."""
        if self.y_range is None:
            return None
        low, high = self.y_range
        fraction = row / (len(self.rows) - 1) if len(self.rows) > 1 else 0.0
        value = high - fraction * (high - low)
        return 10.0**value if self.log_scale else value

    def to_text(self, styles: Mapping[str, Style] | None = None) -> list[Text]:
        """One rich `Text` per row, each run of same-styled cells as one span."""
        styles = styles or {}
        texts: list[Text] = []
        for chars, names in zip(self.rows, self.cell_styles, strict=True):
            text = Text(no_wrap=True, overflow="crop")
            start = 0
            for end in range(1, len(chars) + 1):
                if end == len(chars) or names[end] != names[start]:
                    name = names[start]
                    style = styles.get(name, "") if name is not None else ""
                    text.append(chars[start:end], style)
                    start = end
            texts.append(text)
        return texts


def _visible(points: Sequence[Point], *, log_view: bool) -> list[Point]:
    """Points that can be drawn: finite, and positive when the view is logarithmic."""
    if log_view:
        return [
            (x, math.log10(y)) for x, y in points if math.isfinite(x) and math.isfinite(y) and y > 0
        ]
    return [(x, y) for x, y in points if math.isfinite(x) and math.isfinite(y)]


def _padded_range(values: Sequence[float]) -> tuple[float, float] | None:
    """Min and max of `values`, widened when they are equal so a flat line sits mid-chart."""
    if not values:
        return None
    low, high = min(values), max(values)
    if low == high:
        pad = abs(low) * 0.05 or 1.0
        return low - pad, high + pad
    return low, high


def shared_y_range(series: Sequence[Series], *, log_scale: bool) -> tuple[float, float] | None:
    """The y range (view units) shared by every series that is not on its own scale."""
    values = [
        y
        for one in series
        if not one.own_scale
        for _, y in _visible(one.points, log_view=log_scale)
    ]
    return _padded_range(values)


def chart_rows(series: Sequence[Series], width: int, height: int, *, log_scale: bool) -> Chart:
    """Rasterise `series` into `height` rows of `width` braille cells.

    All series share one x range; the shared series share the y range of their points, and an
    own-scale series is stretched over the full height. Consecutive points are joined with
    Bresenham lines in dot space, so sparse data still reads as a curve. NaN and infinite
    values are dropped, and under `log_scale` so are non-positive values of shared series.
    Later series are drawn on top: their style wins in cells they share with earlier ones.
    """
    width = max(width, 0)
    height = max(height, 0)
    visible = [_visible(one.points, log_view=log_scale and not one.own_scale) for one in series]
    xs = [x for points in visible for x, _ in points]
    x_range = (min(xs), max(xs)) if xs else None
    y_range = shared_y_range(series, log_scale=log_scale)
    bits = [[0] * width for _ in range(height)]
    owners: list[list[str | None]] = [[None] * width for _ in range(height)]
    dots_wide, dots_high = width * 2, height * 4

    def plot(dot_x: int, dot_y: int, style: str) -> None:
        if 0 <= dot_x < dots_wide and 0 <= dot_y < dots_high:
            row, column = dot_y >> 2, dot_x >> 1
            bits[row][column] |= _DOT_BITS[dot_y & 3][dot_x & 1]
            owners[row][column] = style

    x_padded = _padded_range(xs)
    if x_padded is not None and width > 0 and height > 0:
        x_low, x_high = x_padded
        for one, points in zip(series, visible, strict=True):
            y_span = _padded_range([y for _, y in points]) if one.own_scale else y_range
            if y_span is None:
                continue
            y_low, y_high = y_span
            dots = [
                (
                    round((x - x_low) / (x_high - x_low) * (dots_wide - 1)),
                    round((y_high - y) / (y_high - y_low) * (dots_high - 1)),
                )
                for x, y in points
            ]
            if len(dots) == 1:
                plot(*dots[0], one.style)
            for (x0, y0), (x1, y1) in pairwise(dots):
                _bresenham(x0, y0, x1, y1, one.style, plot)

    rows = [
        "".join(chr(_BRAILLE_BASE + cell) if cell else _EMPTY_CELL for cell in row_bits)
        for row_bits in bits
    ]
    return Chart(rows, owners, x_range, y_range, log_scale)


def _bresenham(
    x0: int, y0: int, x1: int, y1: int, style: str, plot: Callable[[int, int, str], None]
) -> None:
    """Plot every dot of the integer line from (x0, y0) to (x1, y1), both ends included."""
    dx, dy = abs(x1 - x0), -abs(y1 - y0)
    step_x = 1 if x0 < x1 else -1
    step_y = 1 if y0 < y1 else -1
    error = dx + dy
    while True:
        plot(x0, y0, style)
        if x0 == x1 and y0 == y1:
            return
        doubled = 2 * error
        if doubled >= dy:
            error += dy
            x0 += step_x
        if doubled <= dx:
            error += dx
            y0 += step_y


def compact_number(value: float, significant: int = 2) -> str:
    """A short axis label: `6.8`, `0.31`, `120`, `1e-3`, `2.5e+5` style."""
    if value == 0 or not math.isfinite(value):
        return "0" if value == 0 else str(value)
    magnitude = abs(value)
    if magnitude < 0.01 or magnitude >= 10_000:
        mantissa, exponent = f"{value:.{significant - 1}e}".split("e")
        if "." in mantissa:
            mantissa = mantissa.rstrip("0").rstrip(".")
        return f"{mantissa}e{int(exponent)}"
    text = f"{value:.{significant}g}"
    # %g switches to exponent form for 100..9999 with few digits; whole numbers read better.
    return f"{value:.0f}" if "e" in text else text


def axis_labels(values: Sequence[float]) -> list[str]:
    """Compact labels for `values`, with just enough digits to tell distinct values apart."""
    distinct = len(set(values))
    labels = [compact_number(value) for value in values]
    for significant in range(3, 7):
        if len(set(labels)) >= distinct:
            break
        labels = [compact_number(value, significant) for value in values]
    return labels


def format_loss(value: float) -> str:
    """A loss for the header: three significant digits, exponent form only when tiny."""
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:.0f}"
    if 0 < magnitude < 1e-3:
        return f"{value:.2e}"
    return f"{value:.3g}"


def _format_step(step: float) -> str:
    return str(int(step)) if step == int(step) else f"{step:g}"


class LossChart(Widget):
    """Training loss over steps: raw and smoothed loss, evaluation losses as points, with the
    learning rate behind them."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "loss-chart--raw",
        "loss-chart--smooth",
        "loss-chart--lr",
        "loss-chart--eval",
        "loss-chart--axis",
    }

    DEFAULT_CSS = """
    LossChart {
        height: 1fr;
        min-height: 3;
        text-wrap: nowrap;
        text-overflow: clip;
    }
    LossChart > .loss-chart--raw {
        color: $primary;
    }
    LossChart > .loss-chart--smooth {
        color: $accent;
        text-style: bold;
    }
    LossChart > .loss-chart--lr {
        color: $foreground 40%;
    }
    LossChart > .loss-chart--eval {
        color: $warning;
        text-style: bold;
    }
    LossChart > .loss-chart--axis {
        color: $text-muted;
    }
    """

    log_scale: reactive[bool] = reactive(False)
    """Plot the loss on a log10 axis (non-positive losses are then left out)."""

    def __init__(
        self,
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._history = LossHistory()
        self._series = LossSeries()
        self._points_drawn = 0

    @property
    def last_rendered_points(self) -> int:
        """How many points (all series, after downsampling) the last render drew."""
        return self._points_drawn

    def set_data(
        self,
        losses: Sequence[tuple[int, float]],
        learning_rates: Sequence[tuple[int, float]] = (),
        evals: Sequence[tuple[int, float]] = (),
    ) -> None:
        """Replace the plotted data with `(step, value)` pairs and redraw."""
        self._history = LossHistory()
        self.extend(sorted(losses), sorted(learning_rates), sorted(evals))

    def extend(
        self,
        losses: Sequence[tuple[int, float]],
        learning_rates: Sequence[tuple[int, float]] = (),
        evals: Sequence[tuple[int, float]] = (),
    ) -> None:
        """Add points logged after the ones already plotted, and redraw."""
        self._history.extend(losses, learning_rates, evals)
        self.show(self._history.series())

    def show(self, series: LossSeries) -> None:
        """Draw `series`, kept elsewhere (the monitor's worker keeps the history off the UI)."""
        self._series = series
        self.refresh()

    def toggle_log_scale(self) -> None:
        """Switch the loss axis between linear and log10."""
        self.log_scale = not self.log_scale

    def _drawable(self, series: Series) -> Sequence[Point]:
        """The points of `series` the current view can show (stored data is already finite)."""
        if self.log_scale and not series.own_scale:
            return [point for point in series.points if point[1] > 0]
        return series.points

    def _style(self, name: str) -> Style:
        return self.get_component_rich_style(name)

    def _header(self) -> Text:
        raw_style = self._style("loss-chart--raw")
        smooth_style = self._style("loss-chart--smooth")
        lr_style = self._style("loss-chart--lr")
        data = self._series
        last_loss = data.losses[-1][1]
        best_step, best_loss = data.lowest
        header = Text(no_wrap=True, overflow="crop")
        header.append("loss", raw_style)
        header.append(f" {format_loss(last_loss)}  ")
        header.append("smoothed", smooth_style)
        header.append(f" {format_loss(data.smoothed[-1][1])}  ")
        header.append(f"min {format_loss(best_loss)} @ step {_format_step(best_step)}")
        if data.best_eval is not None:
            header.append("  ")
            header.append("eval", self._style("loss-chart--eval"))
            best_eval_step, best_eval = data.best_eval
            header.append(
                f" {format_loss(data.evals[-1][1])} (best {format_loss(best_eval)}"
                f" @ {_format_step(best_eval_step)})"
            )
        if data.learning_rates:
            header.append("  ")
            header.append("lr", lr_style)
            header.append(f" {data.learning_rates[-1][1]:.2e} (own scale)")
        if self.log_scale:
            header.append("  [log]")
        return header

    def render(self) -> Text:
        width, height = self.size.width, self.size.height
        self._points_drawn = 0
        data = self._series
        if not data.losses:
            return Text(WAITING_TEXT, no_wrap=True, overflow="crop")
        header = self._header()
        header.truncate(width)
        # The learning rate goes first so the loss curves are drawn over it.
        series = [
            Series(data.learning_rates, "loss-chart--lr", own_scale=True),
            Series(data.losses, "loss-chart--raw"),
            Series(data.smoothed, "loss-chart--smooth"),
            Series(data.evals, "loss-chart--eval"),
        ]
        chart_height = height - 2  # header line above, x-axis line below
        y_range = shared_y_range(series, log_scale=self.log_scale)
        label_rows = _label_rows(chart_height)
        labels = _y_labels(y_range, label_rows, chart_height, log_scale=self.log_scale)
        gutter = max((len(label) for label in labels.values()), default=0)
        chart_width = width - gutter - 1  # one column for the axis line
        if chart_height < _MIN_CHART_ROWS or chart_width < _MIN_CHART_COLUMNS:
            return header

        # Downsample after dropping what the view cannot show, so log scale keeps the
        # smallest positive loss of a bucket rather than a dropped non-positive one.
        buckets = chart_width * 2
        drawn = [
            Series(downsample(self._drawable(one), buckets), one.style, one.own_scale)
            for one in series
        ]
        self._points_drawn = sum(len(one.points) for one in drawn)
        chart = chart_rows(drawn, chart_width, chart_height, log_scale=self.log_scale)
        styles = {name: self._style(name) for name in self.COMPONENT_CLASSES}
        axis_style = styles["loss-chart--axis"]

        lines = [header]
        for row, row_text in enumerate(chart.to_text(styles)):
            line = Text(no_wrap=True, overflow="crop")
            label = labels.get(row)
            if label is None:
                line.append(" " * gutter + "│", axis_style)
            else:
                line.append(label.rjust(gutter) + "┤", axis_style)
            line.append_text(row_text)
            lines.append(line)
        lines.append(_x_axis(chart.x_range, gutter, chart_width, axis_style))
        return Text("\n", no_wrap=True, overflow="crop").join(lines)


def _label_rows(chart_height: int) -> list[int]:
    """Rows that get a y label: top and bottom, plus one or two between when there is room."""
    if chart_height < 1:
        return []
    if chart_height < 3:
        return sorted({0, chart_height - 1})
    if chart_height < 7:
        return [0, (chart_height - 1) // 2, chart_height - 1]
    third = (chart_height - 1) / 3
    return [0, round(third), round(2 * third), chart_height - 1]


def _y_labels(
    y_range: tuple[float, float] | None, rows: list[int], chart_height: int, *, log_scale: bool
) -> dict[int, str]:
    """Label text for each of `rows`, matching `Chart.row_value`."""
    if y_range is None or not rows:
        return {}
    # A throwaway chart of the right height gives the same row -> value mapping as the real one.
    probe = Chart([""] * chart_height, [[]] * chart_height, None, y_range, log_scale)
    values = [probe.row_value(row) for row in rows]
    texts = axis_labels([value for value in values if value is not None])
    return dict(zip(rows, texts, strict=True))


def _x_axis(
    x_range: tuple[float, float] | None, gutter: int, chart_width: int, style: Style
) -> Text:
    """The x-axis line with the first step at its left end and the last at its right."""
    axis = ["─"] * chart_width
    if x_range is not None:
        first, last = (_format_step(step) for step in x_range)
        if first == last:
            last = ""  # one step logged so far: label it once
        if len(first) + len(last) + 1 <= chart_width:
            axis[: len(first)] = first
            axis[chart_width - len(last) :] = last
    return Text(" " * gutter + "└" + "".join(axis), style, no_wrap=True, overflow="crop")
