"""The log pane: bounded under floods, one line per line, filter and follow."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from textual.app import App, ComposeResult
from textual.pilot import Pilot
from textual.widgets import Input, Log

from vlm_tui.tui.widgets.log_view import (
    FILTER_PLACEHOLDER,
    FLUSH_MAX_LINES,
    SHOWN_LINES,
    LogView,
    sanitise_line,
)


class LogApp(App[None]):
    def __init__(self, view: LogView) -> None:
        super().__init__()
        self.view = view

    def compose(self) -> ComposeResult:
        yield self.view


Scenario = Callable[[LogView, Log, Pilot[None]], Awaitable[None]]


def run(scenario: Scenario, view: LogView | None = None) -> None:
    async def main() -> None:
        app = LogApp(view or LogView())
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.pause()
            await scenario(app.view, app.view.query_one("#log", Log), pilot)

    asyncio.run(main())


def test_sanitise_keeps_one_printable_line() -> None:
    assert sanitise_line("plain text") == "plain text"
    assert sanitise_line(" 10%|#   |\r 20%|##  |\r") == " 20%|##  |"
    assert sanitise_line("\x1b[31mred\x1b[0m and\tTab") == "red and\tTab"
    assert sanitise_line("a\x0bb\x0cc\x1cd\x85e\u2028f\x00g") == "abcdefg"
    # Log.write_lines drops empty strings, so blank lines must become a space to survive.
    assert sanitise_line("") == " "
    assert sanitise_line("\r") == " "


def test_a_flood_stays_bounded_and_is_counted() -> None:
    async def scenario(view: LogView, log: Log, pilot: Pilot[None]) -> None:
        total = 100_000
        for start in range(0, total, 1_000):
            view.add_lines([f"line {number}" for number in range(start, start + 1_000)])
            if start % 20_000 == 0:
                view.flush_now()
            assert log.line_count <= SHOWN_LINES
        view.flush_now()
        await pilot.pause()
        assert view.lines_received == total
        assert log.line_count <= SHOWN_LINES
        assert log.lines[-1] == f"line {total - 1}"
        assert view.lines_written <= total

    run(scenario)


def test_one_oversized_flush_writes_its_tail_after_a_notice() -> None:
    async def scenario(view: LogView, log: Log, pilot: Pilot[None]) -> None:
        view.add_lines([f"line {number}" for number in range(12_345)])
        view.flush_now()
        await pilot.pause()
        # One flush writes at most FLUSH_MAX_LINES, the notice included.
        assert log.line_count == FLUSH_MAX_LINES
        skipped = 12_345 - FLUSH_MAX_LINES + 1
        assert log.lines[0] == f"… {skipped:,} lines not shown here (all are in train.log)"
        assert log.lines[1] == f"line {skipped}"
        assert log.lines[-1] == "line 12344"
        assert view.lines_written == FLUSH_MAX_LINES - 1
        assert view.lines_not_shown == skipped
        # Later flushes add up to the pane's capacity, the oldest lines scrolling off.
        for batch in range(4):
            view.add_lines([f"more {batch} {number}" for number in range(FLUSH_MAX_LINES - 1)])
            view.flush_now()
        await pilot.pause()
        assert log.line_count == SHOWN_LINES
        assert log.lines[-1] == f"more 3 {FLUSH_MAX_LINES - 2}"

    run(scenario)


def test_pending_lines_are_bounded_between_flushes() -> None:
    async def scenario(view: LogView, log: Log, pilot: Pilot[None]) -> None:
        view.add_lines([f"line {number}" for number in range(250)])
        view.flush_now()
        assert log.line_count == 10
        # 210 pushed out of the pending buffer, then 31 more than the pane holds.
        assert "241 lines not shown" in log.lines[0]
        assert log.lines[-1] == "line 249"

    run(scenario, LogView(shown_lines=10, history_lines=40, full_log_name="run.log"))


def test_carriage_returns_never_add_lines() -> None:
    async def scenario(view: LogView, log: Log, pilot: Pilot[None]) -> None:
        view.add_lines(["epoch 1\r", "  5%|#\r 50%|#####\r100%|##########", "", "a\r\nb", "done"])
        view.flush_now()
        await pilot.pause()
        assert list(log.lines) == ["epoch 1", "100%|##########", " ", "b", "done"]
        assert view.lines_written == 5

    run(scenario)


def test_the_timer_flushes_without_being_asked() -> None:
    async def scenario(view: LogView, log: Log, pilot: Pilot[None]) -> None:
        view.add_lines(["from the timer"])
        for _ in range(100):  # wait for the timer, however slow the machine is
            if log.line_count:
                break
            await pilot.pause(0.05)
        assert list(log.lines) == ["from the timer"]

    run(scenario)


def test_filter_shows_matching_lines_and_escape_restores() -> None:
    async def scenario(view: LogView, log: Log, pilot: Pilot[None]) -> None:
        filter_box = view.query_one("#log-filter", Input)
        assert filter_box.placeholder == FILTER_PLACEHOLDER
        assert not filter_box.display
        view.add_lines(
            [f"step {number} {'WARNING' if number % 10 == 0 else 'ok'}" for number in range(100)]
        )
        view.flush_now()

        view.open_filter()
        await pilot.pause()
        assert filter_box.display
        assert filter_box.has_focus
        await pilot.press(*"warn")
        await pilot.pause()
        assert view.filter_text == "warn"
        assert log.line_count == 10
        assert all("WARNING" in line for line in log.lines)

        # New output is filtered too.
        view.add_lines(["step 100 ok", "step 101 WARNING"])
        view.flush_now()
        assert log.lines[-1] == "step 101 WARNING"
        assert log.line_count == 11

        await pilot.press("escape")
        await pilot.pause()
        assert view.filter_text == ""
        assert not filter_box.display
        assert filter_box.value == ""
        assert log.line_count == 102
        assert log.lines[0] == "step 0 WARNING"
        assert log.lines[-1] == "step 101 WARNING"

    run(scenario)


def test_follow_toggles_auto_scroll() -> None:
    async def scenario(view: LogView, log: Log, pilot: Pilot[None]) -> None:
        assert view.follow and log.auto_scroll
        view.toggle_follow()
        assert not view.follow and not log.auto_scroll
        view.toggle_follow()
        assert view.follow and log.auto_scroll

    run(scenario)


def test_not_following_keeps_the_same_lines_in_view() -> None:
    async def scenario(view: LogView, log: Log, pilot: Pilot[None]) -> None:
        view.add_lines([f"line {number}" for number in range(100)])
        view.flush_now()
        await pilot.pause()
        view.follow = False
        log.scroll_to(y=50, animate=False, immediate=True)
        await pilot.pause()
        top = log.lines[round(log.scroll_y)]
        view.add_lines([f"more {number}" for number in range(10)])
        view.flush_now()
        await pilot.pause()
        assert log.lines[round(log.scroll_y)] == top

        view.follow = True
        await pilot.pause()
        assert log.is_vertical_scroll_end

    run(scenario, LogView(shown_lines=100))
