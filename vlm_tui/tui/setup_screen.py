"""The setup screen: hyperparameters, topology, the detected environment, and a live preview.

Every edit re-validates its field with the CLI's validators at once; the plan (hardware probe,
topology, axolotl config, command) is rebuilt in a thread worker a moment after the last edit,
so typing never waits on NVML or the file system.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import (
    Button,
    Footer,
    Header,
    Input,
    Label,
    Select,
    Static,
    Switch,
    TabbedContent,
    TabPane,
)

from vlm_tui.core.errors import SetupError, UserError
from vlm_tui.core.host.detection import command_line, topology_lines
from vlm_tui.core.host.topology import Topology
from vlm_tui.core.launch import steps
from vlm_tui.core.request import presets
from vlm_tui.core.request.axolotl_config import (
    dump_axolotl_yaml,
    load_axolotl_yaml,
    settings_values_from_config,
)
from vlm_tui.core.request.settings import FIELDS, Settings, config_file, settings_as_dict
from vlm_tui.core.request.topology_choice import AUTO, CHOICE_LABELS, CHOICES, SEVERAL_NODES
from vlm_tui.tui.setup_values import (
    TOPOLOGY_FIELDS,
    FormRequest,
    FormStart,
    awaiting_build,
    build_request,
    effective_batch_line,
    error_text,
    field_errors,
)

GROUP_TITLES = {
    "model": "Model",
    "data": "Data and output",
    "training": "Training",
    "lora": "LoRA",
    "tracking": "Tracking",
}
PREVIEW_DELAY_S = 0.25


@dataclass(frozen=True)
class Preview:
    """What the worker computed for the current form."""

    command: str
    yaml_text: str
    environment: list[str]
    topology: Topology


class SetupScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f5", "launch", "Launch", priority=True),
        Binding("ctrl+r", "launch", "Launch", show=False, priority=True),
        Binding("ctrl+s", "save_preset", "Save preset"),
        # A function key: letters go to the form's inputs.
        Binding("f2", "runs", "Run history"),
        Binding("f3", "preview_data", "Preview data"),
    ]

    def __init__(self, start: FormStart, environ: Mapping[str, str], workdir: Path) -> None:
        super().__init__()
        self.start = start
        self.environ = dict(environ)
        self.workdir = workdir
        self.gpu_count = 0
        self.world_size = 1
        self.last_error: str | None = None
        self.last_preview: Preview | None = None
        self.preview_error: str | None = None

    # ---- layout -------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="setup-body"):
            with VerticalScroll(id="setup-form"):
                texts = self.start.texts()
                for group, title in GROUP_TITLES.items():
                    yield Label(title, classes="group-title")
                    for spec in FIELDS:
                        if spec.group == group:
                            yield self._field_row(spec.name, texts[spec.name], spec.help)
                yield Label("Topology", classes="group-title")
                yield from self._topology_rows(texts)
            with Vertical(id="setup-side"):
                yield Static("", id="environment-panel", markup=False)
                yield Static("", id="effective-batch", markup=False)
                with TabbedContent(id="preview-tabs"):
                    with TabPane("Command", id="tab-command"), VerticalScroll():
                        yield Static("", id="command-preview", markup=False)
                    with TabPane("YAML", id="tab-yaml"), VerticalScroll():
                        yield Static("", id="yaml-preview", markup=False)
        with Horizontal(id="setup-actions"):
            yield Input(placeholder="axolotl YAML path, or a preset name", id="file-input")
            yield Button("Load YAML", id="load-yaml")
            yield Button("Load preset", id="load-preset")
            yield Button("Save preset", id="save-preset")
            yield Button("Launch (F5)", id="launch", variant="success")
        yield Static("", id="setup-status", markup=False)
        yield Footer()

    def _control(self, name: str, value: object) -> Widget:
        spec = next(spec for spec in FIELDS if spec.name == name)
        if spec.is_flag:
            return Switch(value=bool(value), id=f"field-{name}")
        if spec.choices:
            options = [(choice, choice) for choice in spec.choices]
            blank = name == "chat_template"
            return Select(
                options,
                value=value if value in spec.choices else Select.NULL,
                allow_blank=blank,
                prompt="from the base model" if blank else "Select",
                id=f"field-{name}",
                compact=True,
            )
        return Input(value=str(value), id=f"field-{name}", compact=True)

    def _field_row(self, name: str, value: object, help_text: str) -> Widget:
        note = "built at launch" if name in self.start.built_at_launch else ""
        return Vertical(
            Horizontal(
                Label(name, classes="field-label"),
                self._control(name, value),
                classes="field-line",
            ),
            Static(note, id=f"error-{name}", classes="field-error", markup=False),
            id=f"row-{name}",
            classes="field-row",
        ).with_tooltip(help_text)

    def _topology_rows(self, texts: Mapping[str, object]) -> ComposeResult:
        yield Vertical(
            Horizontal(
                Label("topology", classes="field-label"),
                Select(
                    [(CHOICE_LABELS[choice], choice) for choice in CHOICES],
                    value=AUTO,
                    allow_blank=False,
                    id="field-topology",
                    compact=True,
                ),
                classes="field-line",
            ),
            Static("", id="error-topology", classes="field-error", markup=False),
            classes="field-row",
        )
        for name, hint in (
            ("nodes", "machines taking part"),
            ("node_rank", "this machine's index, 0 on the master"),
            ("master_addr", "address of node 0, the same on every node"),
            ("master_port", "port on node 0 (free one picked when empty)"),
        ):
            yield Vertical(
                Horizontal(
                    Label(name, classes="field-label"),
                    Input(id=f"field-{name}", disabled=True, compact=True),
                    Static("", id=f"origin-{name}", classes="field-origin", markup=False),
                    classes="field-line",
                ),
                Static("", id=f"error-{name}", classes="field-error", markup=False),
                classes="field-row",
            ).with_tooltip(hint)
        for spec in FIELDS:
            if spec.group == "distributed":
                yield self._field_row(spec.name, texts[spec.name], spec.help)

    def on_mount(self) -> None:
        self.title = "vlm-tui"
        self.sub_title = "setup: " + ("the embedded demo" if self.start.demo else "new run")
        self._validate_fields()
        self._refresh_preview()

    # ---- reading the form ---------------------------------------------------------------

    def form_texts(self) -> dict[str, object]:
        values: dict[str, object] = {}
        for spec in FIELDS:
            control = self.query_one(f"#field-{spec.name}")
            if isinstance(control, Switch):
                values[spec.name] = control.value
            elif isinstance(control, Select):
                values[spec.name] = "" if control.value is Select.NULL else str(control.value)
            elif isinstance(control, Input):
                values[spec.name] = control.value
        return values

    def topology_texts(self) -> dict[str, str]:
        kind = self.query_one("#field-topology", Select).value
        texts = {"topology": AUTO if kind is Select.NULL else str(kind)}
        for name in ("nodes", "node_rank", "master_addr", "master_port"):
            texts[name] = self.query_one(f"#field-{name}", Input).value
        return texts

    def form_request(self) -> FormRequest:
        return build_request(
            self.start, self.form_texts(), self.topology_texts(), self.environ, self.gpu_count
        )

    # ---- reacting to edits --------------------------------------------------------------

    @on(Input.Changed)
    @on(Select.Changed)
    @on(Switch.Changed)
    def _edited(self, event: Input.Changed | Select.Changed | Switch.Changed) -> None:
        if event.control.id == "file-input":
            return
        if event.control.id == "field-topology":
            self._enable_topology_fields()
        self._validate_fields()
        self._refresh_preview()

    def _enable_topology_fields(self) -> None:
        kind = self.topology_texts()["topology"]
        for name in ("nodes", "node_rank", "master_addr", "master_port"):
            usable = kind == SEVERAL_NODES or (name == "master_port" and kind == "one_node")
            self.query_one(f"#field-{name}", Input).disabled = not usable
        full = self.form_texts().get("full_finetune") is True
        for name in ("lora_r", "lora_alpha", "lora_dropout"):
            self.query_one(f"#field-{name}").disabled = full

    def _validate_fields(self) -> None:
        texts = self.form_texts()
        errors = field_errors(self.start, texts)
        unbuilt = awaiting_build(self.start, texts)
        for spec in FIELDS:
            message = errors.get(spec.name, "built at launch" if spec.name in unbuilt else "")
            label = self.query_one(f"#error-{spec.name}", Static)
            label.update(message)
            label.display = bool(message)
            row = self.query_one(f"#row-{spec.name}")
            row.set_class(spec.name in errors, "-invalid")
        batch = effective_batch_line(texts, self.world_size)
        self.query_one("#effective-batch", Static).update(batch)

    def _show_topology_error(self, error: UserError | None) -> None:
        for name in TOPOLOGY_FIELDS:
            label = self.query_one(f"#error-{name}", Static)
            message = error.message if error is not None and error.field == name else ""
            label.update(message)
            label.display = bool(message)

    def _refresh_preview(self) -> None:
        try:
            form = self.form_request()
        except UserError as error:
            self._show_topology_error(error)
            self._show_status(error_text(error), error=True)
            self.preview_error = error_text(error)
            self.query_one("#command-preview", Static).update("fix the field named below first")
            return
        self._show_topology_error(None)
        self.preview_error = None
        self._compute_preview(form)

    @work(thread=True, exclusive=True, group="preview")
    def _compute_preview(self, form: FormRequest) -> None:
        try:
            plan = steps.plan_run(form.request, form.environ, self.workdir)
            shown = steps.preview(plan, form.environ, self.workdir).shown()
        except (UserError, SetupError) as error:
            text = error_text(error) if isinstance(error, UserError) else str(error)
            self.app.call_from_thread(self._show_plan_error, text)
            return
        preview = Preview(
            command=command_line(shown),
            yaml_text=dump_axolotl_yaml(plan.config),
            environment=_environment_lines(plan.topology, plan, form),
            topology=plan.topology,
        )
        self.app.call_from_thread(self._show_preview, preview, plan.hardware.gpu_count)

    def _show_plan_error(self, text: str) -> None:
        self.preview_error = text
        self.query_one("#command-preview", Static).update("nothing to launch yet")
        self._show_status(text, error=True)

    def _show_preview(self, preview: Preview, gpu_count: int) -> None:
        self.last_preview = preview
        self.gpu_count = gpu_count
        self.world_size = preview.topology.world_size
        self.query_one("#command-preview", Static).update(preview.command)
        self.query_one("#yaml-preview", Static).update(preview.yaml_text)
        self.query_one("#environment-panel", Static).update("\n".join(preview.environment))
        self.query_one("#effective-batch", Static).update(
            effective_batch_line(self.form_texts(), self.world_size)
        )
        if self.topology_texts()["topology"] == AUTO:
            self._prefill_topology(preview.topology)
        self._show_status("ready: F5 launches this command", error=False)

    def _prefill_topology(self, topology: Topology) -> None:
        """In auto mode the topology fields show what the environment says, and from where."""
        values = {
            "nodes": str(topology.nodes),
            "node_rank": str(topology.node_rank),
            "master_addr": topology.master_addr if topology.distributed else "",
            "master_port": "" if topology.master_port is None else str(topology.master_port),
        }
        for name, value in values.items():
            field = self.query_one(f"#field-{name}", Input)
            with field.prevent(Input.Changed):
                field.value = value
            origin = topology.origins.get(name, "default")
            self.query_one(f"#origin-{name}", Static).update(f"from {origin}")

    def _show_status(self, text: str, *, error: bool) -> None:
        self.last_error = text if error else None
        status = self.query_one("#setup-status", Static)
        status.update(text)
        status.set_class(error, "-error")

    # ---- actions ------------------------------------------------------------------------

    def action_launch(self) -> None:
        errors = field_errors(self.start, self.form_texts())
        if errors:
            name = next(iter(errors))
            self._show_status(f"--{name}: {errors[name]}", error=True)
            self.app.bell()
            return
        try:
            form = self.form_request()
            plan = steps.plan_run(form.request, form.environ, self.workdir)
        except UserError as error:
            self._show_status(error_text(error), error=True)
            self.app.bell()
            return
        except SetupError as error:
            self._show_status(str(error), error=True)
            return
        from vlm_tui.tui.monitor_screen import MonitorScreen

        skip_check = bool(getattr(self.app, "skip_check", False))
        self.app.push_screen(MonitorScreen(plan, form.environ, self.workdir, skip_check))

    def action_preview_data(self) -> None:
        """The dataset field's rows, problems and images (a local dataset only)."""
        from vlm_tui.core.request.settings import validate_field

        text = self.form_texts().get("dataset_name", "")
        try:
            dataset = Path(str(validate_field("dataset_name", text)))
        except UserError as error:
            self._show_status(error_text(error), error=True)
            return
        if not dataset.is_absolute():
            self._show_status("a hub dataset is checked by axolotl at launch", error=False)
            return
        from vlm_tui.tui.dataset_preview import DatasetPreviewScreen

        self.app.push_screen(DatasetPreviewScreen(dataset, self.workdir))

    def action_runs(self) -> None:
        from vlm_tui.tui.runs_screen import RunsScreen

        self.app.push_screen(RunsScreen(self.workdir))

    @on(Button.Pressed, "#launch")
    def _launch_pressed(self) -> None:
        self.action_launch()

    @on(Button.Pressed, "#load-yaml")
    def _load_yaml(self) -> None:
        text = self.query_one("#file-input", Input).value
        try:
            path = Path(config_file(text))
        except ValueError as error:
            self._show_status(f"--config: {error}", error=True)
            return
        try:
            loaded = load_axolotl_yaml(path)
        except UserError as error:
            self._show_status(error_text(error), error=True)
            return
        values = settings_values_from_config(loaded)
        self._restart(
            FormStart(
                settings=replace(self.start.settings, **values),
                loaded_config=loaded,
                overwrite=self.start.overwrite,
            ),
            f"loaded {path.name}: unedited fields keep the YAML's values",
        )

    @on(Button.Pressed, "#load-preset")
    def _load_preset(self) -> None:
        name = self.query_one("#file-input", Input).value.strip()
        try:
            values = presets.load_preset(presets.presets_folder(self.environ), name)
        except UserError as error:
            self._show_status(error_text(error), error=True)
            return
        start = FormStart(
            settings=Settings(**values),
            demo=False,
            overwrite=self.start.overwrite,
        )
        self._restart(start, f"loaded preset {name!r}")

    @on(Button.Pressed, "#save-preset")
    def action_save_preset(self) -> None:
        name = self.query_one("#file-input", Input).value.strip()
        try:
            settings = self.form_request().request.settings
            path = presets.save_preset(
                presets.presets_folder(self.environ), name, _preset_values(self.start, settings)
            )
        except UserError as error:
            self._show_status(error_text(error), error=True)
            return
        self._show_status(f"saved preset {name!r} to {path}", error=False)

    def _restart(self, start: FormStart, message: str) -> None:
        """Refill every field from a new start (a loaded YAML or preset)."""
        self.start = start
        texts = start.texts()
        for spec in FIELDS:
            control = self.query_one(f"#field-{spec.name}")
            value = texts[spec.name]
            if isinstance(control, Switch):
                with control.prevent(Switch.Changed):
                    control.value = bool(value)
            elif isinstance(control, Select):
                with control.prevent(Select.Changed):
                    control.value = value if value in (spec.choices or ()) else Select.NULL
            elif isinstance(control, Input):
                with control.prevent(Input.Changed):
                    control.value = str(value)
        self.sub_title = "setup: " + message
        self._validate_fields()
        self._refresh_preview()
        self.notify(message)


def _preset_values(start: FormStart, settings: Settings) -> dict[str, object]:
    """Typed values worth keeping: no blanks, no demo paths that only exist once built."""
    return {
        name: value
        for name, value in settings_as_dict(settings).items()
        if value is not None and value != "" and name not in start.built_at_launch
    }


def _environment_lines(topology: Topology, plan: steps.RunPlan, form: FormRequest) -> list[str]:
    lines = topology_lines(topology, plan.detection, topology.master_port)
    if form.choice.kind != AUTO:
        lines.append(f"  (set in the form: {CHOICE_LABELS[form.choice.kind]})")
    lines.extend(topology.notes)
    lines.append(plan.hardware.note or f"GPUs: {', '.join(plan.hardware.gpu_names)}")
    return lines
