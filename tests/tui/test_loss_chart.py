"""The loss chart: its pure drawing functions, and the widget inside a headless app."""

from __future__ import annotations

import asyncio
import math

import pytest
from rich.style import Style
from textual.app import App, ComposeResult

from vlm_tui.core.output.loss_history import downsample, smooth
from vlm_tui.tui.widgets.loss_chart import (
    WAITING_TEXT,
    LossChart,
    Series,
    axis_labels,
    chart_rows,
    compact_number,
)

BLANK = " "


def test_smooth_is_debiased_so_the_first_value_is_kept() -> None:
    smoothed = smooth([4.0, 2.0, 2.0])
    assert smoothed[0] == 4.0
    assert 2.0 < smoothed[1] < 4.0
    assert smoothed[2] < smoothed[1]


def test_smooth_keeps_a_constant_series_constant() -> None:
    assert smooth([0.7] * 500) == pytest.approx([0.7] * 500)


def test_smooth_with_zero_weight_is_the_identity() -> None:
    assert smooth([3.0, 1.0, 2.0], weight=0.0) == [3.0, 1.0, 2.0]


def test_smooth_rejects_a_weight_that_never_moves() -> None:
    with pytest.raises(ValueError):
        smooth([1.0], weight=1.0)


def test_downsample_leaves_short_series_alone() -> None:
    points = [(float(x), float(x % 3)) for x in range(20)]
    assert downsample(points, 10) == points


def test_downsample_bounds_length_and_keeps_ends_and_extremes() -> None:
    points = [(float(x), math.sin(x / 50.0)) for x in range(10_000)]
    points[1234] = (1234.0, 9.0)  # a spike must survive
    points[7777] = (7777.0, -9.0)
    reduced = downsample(points, 50)
    assert len(reduced) <= 2 * 50 + 2
    assert reduced[0] == points[0]
    assert reduced[-1] == points[-1]
    assert (1234.0, 9.0) in reduced
    assert (7777.0, -9.0) in reduced
    assert [x for x, _ in reduced] == sorted(x for x, _ in reduced)


def _lit(chart_row: str) -> list[int]:
    return [column for column, char in enumerate(chart_row) if char != BLANK]


def test_chart_has_the_requested_shape() -> None:
    chart = chart_rows([Series([(0.0, 1.0), (9.0, 2.0)], "raw")], 17, 5, log_scale=False)
    assert len(chart.rows) == 5
    assert all(len(row) == 17 for row in chart.rows)
    assert len(chart.cell_styles) == 5
    assert all(len(row) == 17 for row in chart.cell_styles)


def test_falling_series_starts_top_left_and_ends_bottom_right() -> None:
    falling = [(float(step), 10.0 - step) for step in range(10)]
    chart = chart_rows([Series(falling, "raw")], 20, 6, log_scale=False)
    assert chart.rows[0][0] != BLANK
    assert chart.rows[-1][-1] != BLANK
    assert chart.rows[0][-1] == BLANK
    assert chart.rows[-1][0] == BLANK
    # Lines join the points, so every column has a dot somewhere.
    assert all(any(row[column] != BLANK for row in chart.rows) for column in range(20))
    assert chart.cell_styles[0][0] == "raw"


def test_sparse_points_are_joined_by_lines() -> None:
    chart = chart_rows([Series([(0.0, 0.0), (1.0, 1.0)], "raw")], 30, 8, log_scale=False)
    assert sum(len(_lit(row)) for row in chart.rows) >= 30


def test_nan_and_inf_are_dropped() -> None:
    points = [(0.0, 1.0), (1.0, math.nan), (2.0, math.inf), (3.0, 0.5)]
    chart = chart_rows([Series(points, "raw")], 10, 4, log_scale=False)
    assert chart.y_range == (0.5, 1.0)
    assert chart.x_range == (0.0, 3.0)


def test_log_scale_drops_non_positive_values() -> None:
    points = [(0.0, -1.0), (1.0, 0.0), (2.0, 10.0), (3.0, 0.1)]
    linear = chart_rows([Series(points, "raw")], 10, 4, log_scale=False)
    logged = chart_rows([Series(points, "raw")], 10, 4, log_scale=True)
    assert linear.y_range == (-1.0, 10.0)
    assert logged.y_range == pytest.approx((-1.0, 1.0))
    assert logged.x_range == (2.0, 3.0)
    assert logged.row_value(0) == pytest.approx(10.0)
    assert logged.row_value(3) == pytest.approx(0.1)


def test_own_scale_series_does_not_stretch_the_shared_range() -> None:
    loss = Series([(0.0, 2.0), (10.0, 1.0)], "raw")
    rate = Series([(0.0, 0.0), (10.0, 1e-3)], "lr", own_scale=True)
    chart = chart_rows([rate, loss], 20, 5, log_scale=False)
    assert chart.y_range == (1.0, 2.0)
    # The rate rises over the full height: bottom left to top right.
    assert chart.cell_styles[-1][0] == "lr"
    assert chart.cell_styles[0][-1] == "lr"


def test_to_text_styles_each_series() -> None:
    chart = chart_rows([Series([(0.0, 1.0), (1.0, 1.0)], "raw")], 4, 1, log_scale=False)
    bold = Style(bold=True)
    (text,) = chart.to_text({"raw": bold})
    assert text.plain == chart.rows[0]
    assert any(span.style == bold for span in text.spans)


def test_axis_labels_are_compact_and_distinct() -> None:
    assert compact_number(6.8) == "6.8"
    assert compact_number(0.31) == "0.31"
    assert compact_number(0.001) == "1e-3"
    assert compact_number(250.0) == "250"
    labels = axis_labels([6.81, 6.8, 6.79])
    assert len(set(labels)) == 3


class ChartApp(App[None]):
    def compose(self) -> ComposeResult:
        yield LossChart()


def _falling_losses(count: int) -> list[tuple[int, float]]:
    # A noisy but falling curve whose minimum sits at step 30.
    losses = [
        (step, 3.0 + 3.0 * math.exp(-step / 10.0) + 0.1 * (step % 3)) for step in range(count)
    ]
    losses[30] = (30, 0.291)
    return losses


def test_widget_renders_header_chart_and_log_toggle() -> None:
    async def scenario() -> None:
        app = ChartApp()
        async with app.run_test(size=(100, 20)) as pilot:
            chart = app.query_one(LossChart)
            await pilot.pause()
            assert chart.render().plain == WAITING_TEXT

            losses = _falling_losses(200)
            rates = [(step, 1.2e-3 * min(1.0, step / 20)) for step in range(200)]
            chart.set_data(losses, rates)
            await pilot.pause()
            lines = chart.render().plain.split("\n")
            header = lines[0]
            assert header.startswith(f"loss {losses[-1][1]:.3g}")
            assert "smoothed" in header
            assert "min 0.291 @ step 30" in header
            assert "lr 1.20e-03 (own scale)" in header
            assert "[log]" not in header
            assert len(lines) == chart.size.height
            assert all(len(line) <= chart.size.width for line in lines)
            assert lines[-1].strip().startswith("└0")
            assert lines[-1].endswith("199")
            assert chart.last_rendered_points > 0
            # What the screen actually shows matches the render.
            shown = "".join(segment.text for segment in chart.render_line(0))
            assert shown.rstrip() == header

            chart.toggle_log_scale()
            await pilot.pause()
            assert chart.log_scale
            assert "[log]" in chart.render().plain.split("\n")[0]

    asyncio.run(scenario())


def test_widget_shows_only_the_header_when_tiny() -> None:
    async def scenario() -> None:
        app = ChartApp()
        async with app.run_test(size=(40, 3)) as pilot:
            chart = app.query_one(LossChart)
            chart.set_data(_falling_losses(50))
            await pilot.pause()
            rendered = chart.render().plain
            assert "\n" not in rendered
            assert rendered.startswith("loss ")
            assert len(rendered) <= chart.size.width

    asyncio.run(scenario())


def test_evaluations_are_points_on_the_loss_scale_with_the_best_in_the_header() -> None:
    async def scenario() -> None:
        app = ChartApp()
        async with app.run_test(size=(100, 20)) as pilot:
            chart = app.query_one(LossChart)
            losses = _falling_losses(100)
            evals = [(0, 6.9), (25, 3.4), (50, 3.1), (75, 3.3)]
            chart.set_data(losses, evals=evals)
            await pilot.pause()
            header = chart.render().plain.split("\n")[0]
            assert "eval 3.3 (best 3.1 @ 50)" in header, header
            with_evals = chart.last_rendered_points
            chart.set_data(losses)
            await pilot.pause()
            assert "eval" not in chart.render().plain.split("\n")[0]
            # The four evaluations are drawn as a series of their own.
            assert with_evals == chart.last_rendered_points + len(evals)

    asyncio.run(scenario())
