"""The dataset preview: the check's totals and problems, and a row viewer with the image itself.

Opened from the setup screen (F3) on the dataset field's value. The check reads every row in a
thread worker (the screen never blocks); the viewer holds the first rows as the training will
read them, problems said in place. Images are drawn by textual-image: Kitty or Sixel graphics
where the terminal answered for them at start-up, Unicode half-blocks elsewhere (inside tmux).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from vlm_tui.core.data.dataset_check import (
    DataReport,
    PreviewRow,
    check_dataset,
    preview_rows,
    shown_path,
)
from vlm_tui.core.data.dataset_rows import DatasetError
from vlm_tui.tui.widgets.picture import picture_widget, show_picture

# Rows the viewer holds: enough to page through, bounded for a dataset of millions.
VIEWED_ROWS = 1000


class DatasetPreviewScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "row(1)", "Next row"),
        Binding("p", "row(-1)", "Previous row"),
        Binding("e", "next_problem", "Next problem"),
        Binding("escape,b", "back", "Back"),
    ]

    DEFAULT_CSS = """
    DatasetPreviewScreen #preview-summary {
        height: auto;
        padding: 0 1;
    }
    DatasetPreviewScreen #preview-problems {
        height: auto;
        max-height: 7;
        padding: 0 1;
        color: $warning;
    }
    DatasetPreviewScreen #preview-body {
        height: 1fr;
    }
    DatasetPreviewScreen #preview-row {
        width: 1fr;
        padding: 0 1;
    }
    DatasetPreviewScreen #preview-image {
        width: 34;
        height: 17;
    }
    """

    def __init__(self, dataset: Path, workdir: Path) -> None:
        super().__init__()
        self.dataset = dataset
        self.workdir = workdir
        self.rows: list[PreviewRow] = []
        self.index = 0
        self.report: DataReport | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(f"checking {shown_path(self.dataset)} ...", id="preview-summary")
        yield Static("", id="preview-problems")
        with Horizontal(id="preview-body"):
            with VerticalScroll(id="preview-row"):
                yield Static("", id="preview-text")
            yield picture_widget("preview-image")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "vlm-tui"
        self.sub_title = f"dataset: {self.dataset.name}"
        self._check()

    @work(thread=True, exclusive=True)
    def _check(self) -> None:
        try:
            report = check_dataset(self.dataset, self.workdir)
            rows = preview_rows(self.dataset, self.workdir, VIEWED_ROWS)
        except DatasetError as error:
            self.app.call_from_thread(self._failed, str(error))
            return
        self.app.call_from_thread(self._checked, report, rows)

    def _failed(self, text: str) -> None:
        self.query_one("#preview-summary", Static).update(f"cannot read the dataset: {text}")

    def _checked(self, report: DataReport, rows: list[PreviewRow]) -> None:
        self.report, self.rows = report, rows
        self.query_one("#preview-summary", Static).update(report.summary_line())
        self.query_one("#preview-problems", Static).update("\n".join(report.problem_lines()))
        self._show(0)

    def _show(self, index: int) -> None:
        if not self.rows:
            return
        self.index = max(0, min(index, len(self.rows) - 1))
        row = self.rows[self.index]
        head = f"{row.where} of {len(self.rows)} shown ({row.format or 'unknown format'})"
        lines = [head, ""]
        if row.problem is not None:
            lines += [f"problem: {row.where} {row.problem}", ""]
        lines += row.text_lines()
        self.query_one("#preview-text", Static).update("\n".join(lines))
        picture = row.first_image() if row.problem is None else None
        show_picture(self.query_one("#preview-image"), picture)

    def action_row(self, step: int) -> None:
        self._show(self.index + step)

    def action_next_problem(self) -> None:
        after = [i for i in range(self.index + 1, len(self.rows)) if self.rows[i].problem]
        if after:
            self._show(after[0])
        else:
            self.notify("no problem in the rows after this one")

    def action_back(self) -> None:
        self.app.pop_screen()
