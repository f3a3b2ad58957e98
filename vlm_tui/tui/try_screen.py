"""The Try screen: a run's base model and fine-tuned weights answer side by side, and Merge.

Opened from the monitor once a run has ended (t), from run history (t) or by `vlm-tui try` in a
terminal. The models load in a child process with the training stack (core/after/trying.py:
TrySession), never in this one; a thread worker reads its answers and hands each to the UI as
it comes, so the screen stays live while a large model loads. The child keeps the models
loaded for the prompt box's questions until the screen closes or other weights are chosen from
the list (the final weights and each checkpoint, with the loss it was saved at). The table's
highlighted row shows its image (half-blocks in tmux, as in the dataset preview) and the whole
prompt and answers. `m` merges the chosen adapter into the base model (core/after/merging.py),
in a child too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from vlm_tui.core.after.merge_request import merge_request
from vlm_tui.core.after.merging import Verified, merge
from vlm_tui.core.after.try_request import (
    DEFAULT_MAX_NEW_TOKENS,
    DEFAULT_ROWS,
    SavedWeights,
    TryItem,
    TryRequest,
    own_items,
    run_config,
    try_request,
    weights_choices,
)
from vlm_tui.core.after.trying import (
    BASE,
    TUNED,
    Answer,
    Loaded,
    Said,
    TrySession,
    Unanswered,
    agreement,
)
from vlm_tui.core.errors import SetupError, UserError
from vlm_tui.core.records.folder import RunPaths
from vlm_tui.tui.hand_over import on_ui
from vlm_tui.tui.setup_values import error_text
from vlm_tui.tui.widgets.picture import picture_widget, show_picture

# A table cell holds this much of an answer; the highlighted row's whole text is beside it.
CELL_CHARS = 44
WAITING = "…"
COLUMNS = ("#", "row", "reference", "base", "fine-tuned")


@dataclass(frozen=True)
class Chosen:
    """What the worker read from the run folder before the child starts."""

    request: TryRequest
    choices: list[SavedWeights]


class TryScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("m", "merge", "Merge adapter"),
        Binding("w", "focus_weights", "Weights"),
        Binding("a", "focus_prompt", "Ask"),
        Binding("escape", "back", "Back"),
    ]

    DEFAULT_CSS = """
    TryScreen #try-heading { height: auto; padding: 0 1; color: $accent; }
    TryScreen #try-state { height: auto; padding: 0 1; }
    TryScreen #try-body { height: 1fr; }
    TryScreen #try-side { width: 36; }
    TryScreen #try-weights { height: auto; max-height: 8; }
    TryScreen #try-image { width: 34; height: 17; }
    TryScreen #try-main { width: 1fr; }
    TryScreen #try-table { height: auto; max-height: 14; }
    TryScreen #try-detail { height: 1fr; padding: 0 1; border: round $primary-muted; }
    TryScreen #try-ask { height: auto; }
    TryScreen #try-image-path { width: 40; }
    TryScreen #try-prompt { width: 1fr; }
    """

    def __init__(
        self,
        run: RunPaths,
        environ: Mapping[str, str],
        *,
        rows: int = DEFAULT_ROWS,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        checkpoint: int | None = None,
        images: list[str] | None = None,
        prompts: list[str] | None = None,
    ) -> None:
        """The options are `vlm-tui try`'s flags; the screen starts with `checkpoint`'s
        weights (the final ones when None)."""
        super().__init__()
        self.run = run
        self.environ = dict(environ)
        self.rows = rows
        self.max_new_tokens = max_new_tokens
        self.checkpoint = checkpoint
        self.images = list(images or [])
        self.prompts = list(prompts or [])
        self.request: TryRequest | None = None
        self.items: list[TryItem] = []
        self.answers: dict[int, dict[str, str]] = {}
        self.problems: dict[int, str] = {}
        # What the prompt box asked, asked again when other weights are chosen.
        self.asked_own: list[TryItem] = []
        self.session: TrySession | None = None
        # Counts the weights chosen: a child started for earlier ones is closed, not used.
        self.generation = 0
        self.loaded: Loaded | None = None
        self.merging = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(f"try {self.run.run_id}: reading the run ...", id="try-heading", markup=False)
        yield Static("", id="try-state", markup=False)
        with Horizontal(id="try-body"):
            with Vertical(id="try-side"):
                yield Label("weights (Enter loads)")
                yield OptionList(id="try-weights")
                yield picture_widget("try-image")
            with Vertical(id="try-main"):
                table: DataTable[str] = DataTable(
                    id="try-table", cursor_type="row", zebra_stripes=True
                )
                for label in COLUMNS:
                    table.add_column(label, key=label)
                yield table
                with VerticalScroll(id="try-detail"):
                    yield Static("", id="try-detail-text", markup=False)
        with Horizontal(id="try-ask"):
            yield Input(placeholder="image path (optional)", id="try-image-path")
            yield Input(placeholder="your prompt; Enter asks both models", id="try-prompt")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "vlm-tui"
        self.sub_title = f"try: {self.run.run_id}"
        self.query_one("#try-table", DataTable).focus()
        self._choose(self.checkpoint)

    def on_unmount(self) -> None:
        self._close_session()

    # ---- workers ----------------------------------------------------------------------

    def _hand(self, method: Any, *args: Any) -> bool:
        return on_ui(self.app, method, *args)

    @work(thread=True, exclusive=True, group="try-read", exit_on_error=False)
    def _choose(self, checkpoint: int | None) -> None:
        """Read the run folder for `checkpoint`'s weights, then start the child."""
        try:
            request = try_request(
                self.run,
                rows=self.rows,
                images=self.images,
                prompts=self.prompts,
                checkpoint=checkpoint,
                max_new_tokens=self.max_new_tokens,
            )
            choices = weights_choices(self.run, run_config(self.run))
        except UserError as error:
            self._hand(self._failed, error_text(error))
            return
        self._hand(self._chosen, Chosen(request, choices))

    @work(thread=True, group="try-answer", exit_on_error=False)
    def _answer(self, request: TryRequest, generation: int) -> None:
        """Start the child (a fork of this process: never on the UI thread) and hand over
        what it says until it ends or other weights are chosen."""
        session = TrySession(request, self.environ)
        if not self._hand(self._session_started, session, generation):
            session.close()
            return
        try:
            for said in session.events():
                if self.session is not session or not self._hand(self._took, said):
                    return
        except SetupError as error:
            if self.session is session:  # not a session closed on purpose
                self._hand(self._failed, str(error))

    @work(thread=True, exclusive=True, group="try-merge", exit_on_error=False)
    def _merge(self, checkpoint: int | None) -> None:
        try:
            request = merge_request(self.run, checkpoint=checkpoint, to=None)
            self._hand(self._merge_said, f"merging into {request.target} ...")
            for said in merge(request, self.environ):
                if isinstance(said, Verified):
                    self._hand(
                        self._merge_said,
                        f"checked: logits differ from base + adapter by at most"
                        f" {said.max_abs_diff:.2e} (allowed {said.tolerance:.2e})",
                    )
                else:
                    self._hand(self._merged, f"merged model saved to {said.target}")
        except UserError as error:
            self._hand(self._merge_failed, error_text(error))
        except SetupError as error:
            self._hand(self._merge_failed, str(error))

    # ---- on the UI --------------------------------------------------------------------

    def _chosen(self, chosen: Chosen) -> None:
        request = chosen.request
        self.request = request
        self.items = list(request.items)
        self.answers, self.problems, self.loaded = {}, {}, None
        which = "final weights" if request.step is None else f"checkpoint at step {request.step}"
        kind = "adapter" if request.adapter else "weights"
        self.query_one("#try-heading", Static).update(
            f"try {self.run.run_id}: base {request.base_model}, {kind} {request.weights}"
            f" ({which}); greedy, up to {request.max_new_tokens} new tokens"
        )
        weights = self.query_one("#try-weights", OptionList)
        weights.clear_options()
        for choice in chosen.choices:
            key = "final" if choice.step is None else str(choice.step)
            weights.add_option(Option(choice.label(), id=key))
        current = "final" if request.step is None else str(request.step)
        weights.highlighted = weights.get_option_index(current)
        table: DataTable[str] = self.query_one("#try-table", DataTable)
        table.clear()
        for index in range(len(self.items)):
            self._add_row(index)
        self._close_session()
        self.generation += 1
        self._state("loading the models in a child process ...")
        self._answer(request, self.generation)
        self._show_detail(0)

    def _session_started(self, session: TrySession, generation: int) -> None:
        if generation != self.generation:  # other weights were chosen meanwhile
            session.close()
            return
        self.session = session
        # The prompt box's questions so far are asked of these weights too.
        self._send_own(self.asked_own)

    def _add_row(self, index: int) -> None:
        item = self.items[index]
        table: DataTable[str] = self.query_one("#try-table", DataTable)
        table.add_row(
            str(index + 1),
            _cell(item.source),
            _cell(item.reference or "-"),
            WAITING,
            WAITING,
            key=str(index),
        )

    def _took(self, said: Said) -> None:
        if isinstance(said, Loaded):
            self.loaded = said
            self._state(f"models loaded on {said.device} in {said.seconds:.1f} s; answering ...")
            return
        table: DataTable[str] = self.query_one("#try-table", DataTable)
        if isinstance(said, Unanswered):
            self.problems[said.index] = said.why
            table.update_cell(
                str(said.index), "base", _cell(f"(not asked: {said.why})"), update_width=True
            )
            self._show_detail(table.cursor_row)
            return
        assert isinstance(said, Answer)
        self.answers.setdefault(said.index, {})[said.model] = said.text
        column = "base" if said.model == BASE else "fine-tuned"
        table.update_cell(str(said.index), column, _cell(said.text), update_width=True)
        if said.index == table.cursor_row:
            self._show_detail(said.index)
        done = sum(len(got) == 2 for got in self.answers.values()) + len(self.problems)
        if done >= len(self.items):
            found = agreement(self.items, self.answers)
            loaded = self.loaded
            where = f"models loaded on {loaded.device}; " if loaded else ""
            summary = found.line() if found else f"{len(self.items)} prompts answered"
            self._state(f"{where}{summary}")

    def _state(self, text: str) -> None:
        self.query_one("#try-state", Static).update(text)

    def _failed(self, text: str) -> None:
        self._state(f"cannot try: {text}")
        self.app.bell()

    def _show_detail(self, index: int) -> None:
        if not 0 <= index < len(self.items):
            show_picture(self.query_one("#try-image"), None)
            return
        item = self.items[index]
        got = self.answers.get(index, {})
        lines = [item.source + (f"  {item.image}" if item.image else ""), ""]
        lines += [f"prompt:     {item.prompt}"]
        if item.reference is not None:
            lines += [f"reference:  {item.reference}"]
        if index in self.problems:
            lines += [f"not asked:  {self.problems[index]}"]
        else:
            lines += [f"base:       {got.get(BASE, WAITING)}"]
            lines += [f"fine-tuned: {got.get(TUNED, WAITING)}"]
        self.query_one("#try-detail-text", Static).update("\n".join(lines))
        show_picture(self.query_one("#try-image"), item.image)

    @on(DataTable.RowHighlighted, "#try-table")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail(event.cursor_row)

    @on(OptionList.OptionSelected, "#try-weights")
    def _weights_selected(self, event: OptionList.OptionSelected) -> None:
        request = self.request
        key = event.option.id
        step = None if key in (None, "final") else int(key)
        if request is not None and step == request.step:
            return
        self._close_session()
        self._state("reading the run ...")
        self._choose(step)

    @on(Input.Submitted, "#try-prompt")
    def _ask(self, event: Input.Submitted) -> None:
        prompt = event.value.strip()
        image = self.query_one("#try-image-path", Input).value.strip()
        if not prompt and not image:
            return
        try:
            items = own_items([image] if image else [], [prompt] if prompt else [])
        except UserError as error:
            self.notify(error_text(error), severity="error")
            return
        if not self._send_own(items):
            self.notify("the models are not loaded; choose weights to load them", severity="error")
            return
        self.asked_own += items
        event.input.value = ""
        self._state("answering your prompt ...")

    def _send_own(self, items: list[TryItem]) -> bool:
        """Ask the loaded models `items` too, each a new row of the table."""
        if not items:
            return True
        session = self.session
        first = session.ask_more(items) if session is not None else None
        if first is None:
            return False
        for offset, item in enumerate(items):
            number = first + offset
            self.items.append(replace(item, source=f"your prompt {number + 1}"))
            self._add_row(number)
        self.query_one("#try-table", DataTable).move_cursor(row=first)
        return True

    def _close_session(self) -> None:
        self.generation += 1
        session, self.session = self.session, None
        if session is not None:
            session.close()

    # ---- merge ------------------------------------------------------------------------

    def action_merge(self) -> None:
        request = self.request
        if request is None:
            self.notify("the run is still being read", severity="warning")
            return
        if not request.adapter:
            self.notify("these weights are a whole model already: nothing to merge")
            return
        if self.merging:
            self.notify("a merge is already running", severity="warning")
            return
        self.merging = True
        self._merge(request.step)

    def _merge_said(self, text: str) -> None:
        self._state(text)

    def _merged(self, text: str) -> None:
        self.merging = False
        self._state(text)
        self.notify(text)

    def _merge_failed(self, text: str) -> None:
        self.merging = False
        self._state(f"not merged: {text}")
        self.notify(f"not merged: {text}", severity="error")

    # ---- keys -------------------------------------------------------------------------

    def action_focus_weights(self) -> None:
        self.query_one("#try-weights", OptionList).focus()

    def action_focus_prompt(self) -> None:
        self.query_one("#try-prompt", Input).focus()

    def action_back(self) -> None:
        self._close_session()
        self.app.pop_screen()


def _cell(text: str) -> str:
    return text if len(text) <= CELL_CHARS else text[: CELL_CHARS - 1] + "…"
