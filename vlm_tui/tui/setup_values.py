"""What the setup form holds, without Textual: texts per field -> a launch request.

The form starts from a Settings (defaults, flags, the demo's values or a loaded YAML) and only
the fields the user edits become explicit, so a loaded YAML keeps every value the user did not
touch. Validation is the CLI's: `validate_field` per field, then `settings_from_values`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlm_tui.core.errors import UserError
from vlm_tui.core.launch import demo, steps
from vlm_tui.core.request.settings import (
    FIELDS,
    Settings,
    check_consistency,
    settings_as_dict,
    settings_from_values,
    validate_field,
)
from vlm_tui.core.request.topology_choice import TopologyChoice, choice_from_values, environ_for

TOPOLOGY_FIELDS = ("topology", "nodes", "node_rank", "master_addr", "master_port")
FIELD_NAMES = frozenset(spec.name for spec in FIELDS) | {"config", *TOPOLOGY_FIELDS}


def field_text(value: object) -> str:
    """How a settings value reads in an Input (None is an empty field)."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


@dataclass
class FormStart:
    """The values the form opened with; edits are measured against these."""

    settings: Settings
    loaded_config: dict[str, Any] | None = None
    demo: bool = False
    overwrite: bool = False
    # Demo fields pointing at assets that are built at launch: not checked until edited.
    built_at_launch: frozenset[str] = field(default_factory=frozenset)

    def texts(self) -> dict[str, object]:
        values = settings_as_dict(self.settings)
        return {
            spec.name: values[spec.name] if spec.is_flag else field_text(values[spec.name])
            for spec in FIELDS
        }


def start_for(request: steps.LaunchRequest, environ: Mapping[str, str], workdir: Path) -> FormStart:
    """The form's first values for a request from the command line."""
    settings = request.settings
    built: frozenset[str] = frozenset()
    if request.demo:
        assets = demo.demo_asset_paths(demo.demo_cache_root(environ))
        settings = steps.demo_settings(settings, assets, workdir)
        if not demo.demo_assets_ready(assets):
            built = frozenset({"base_model", "dataset_name"}) - settings.explicit
    return FormStart(
        settings=settings,
        loaded_config=request.loaded_config,
        demo=request.demo,
        overwrite=request.overwrite,
        built_at_launch=built,
    )


def awaiting_build(start: FormStart, texts: Mapping[str, object]) -> set[str]:
    """Demo fields still pointing at assets that are built at launch (not checked yet)."""
    initial = start.texts()
    return {name for name in start.built_at_launch if texts.get(name) == initial[name]}


def field_errors(start: FormStart, texts: Mapping[str, object]) -> dict[str, str]:
    """Each field's own error, as the CLI would word it (without the flag)."""
    errors: dict[str, str] = {}
    unbuilt = awaiting_build(start, texts)
    for spec in FIELDS:
        value = texts.get(spec.name)
        if spec.name in unbuilt:
            continue
        try:
            validate_field(spec.name, value)
        except UserError as error:
            errors[spec.name] = error.message
    return errors


def edited(start: FormStart, texts: Mapping[str, object]) -> dict[str, object]:
    initial = start.texts()
    return {name: value for name, value in texts.items() if initial.get(name) != value}


@dataclass(frozen=True)
class FormRequest:
    request: steps.LaunchRequest
    environ: dict[str, str]
    choice: TopologyChoice


def build_request(
    start: FormStart,
    texts: Mapping[str, object],
    topology_texts: Mapping[str, str],
    environ: Mapping[str, str],
    gpu_count: int,
) -> FormRequest:
    """The launch request the form describes; UserError names the first field to fix."""
    changes = edited(start, texts)
    settings = settings_from_values(changes, base=start.settings, require_data=False)
    if start.loaded_config is None:
        check_consistency(settings)
    choice = choice_from_values(topology_texts)
    per_node = settings.gpus_per_node or max(gpu_count, 1)
    request = steps.LaunchRequest(
        settings=settings,
        loaded_config=start.loaded_config,
        demo=start.demo,
        overwrite=start.overwrite,
    )
    return FormRequest(request, environ_for(choice, environ, per_node), choice)


def effective_batch_line(texts: Mapping[str, object], world_size: int) -> str:
    """batch x accumulation x processes, or what is missing to compute it."""
    try:
        batch = int(validate_field("batch_size", texts.get("batch_size")))
        steps = int(
            validate_field("gradient_accumulation_steps", texts.get("gradient_accumulation_steps"))
        )
    except UserError:
        return "effective batch: fix batch size and accumulation first"
    processes = "process" if world_size == 1 else "processes"
    return (
        f"effective batch: {batch} x {steps} accumulation x {world_size} {processes}"
        f" = {batch * steps * world_size} samples per step"
    )


def error_text(error: UserError) -> str:
    """The CLI's wording: `--field: message` for our settings, the name as is otherwise."""
    known = error.field in FIELD_NAMES
    name = f"--{error.field}" if known else error.field
    return f"{name}: {error.message}"
