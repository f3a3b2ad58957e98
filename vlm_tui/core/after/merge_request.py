"""What `vlm-tui merge` writes: the run's adapter merged into its base model, in a new folder.

The folder is new (never one that exists) and beside the run's output, which is only read:
`<output_dir>-merged`, or `<output_dir>-checkpoint-<step>-merged` for a checkpoint's adapter.
A run that trained every weight has nothing to merge: its output folder already loads alone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlm_tui.core.after.try_request import (
    dataset_items,
    run_config,
    saved_weights,
    training_template,
)
from vlm_tui.core.errors import UserError
from vlm_tui.core.records.folder import RunPaths

# Logits of the merged model, reloaded from disk, against the base model with the adapter: the
# largest difference allowed, relative to the largest logit (float32 sums in another order).
LOGITS_TOLERANCE = 1e-4


@dataclass(frozen=True)
class MergeRequest:
    run: RunPaths
    base_model: str
    adapter: Path
    step: int | None  # the checkpoint's step; None for the final adapter
    target: Path
    chat_template: str | None
    chat_template_jinja: str | None
    # The conversation the logits are compared on: the dataset's first row, or a greeting.
    sample: list[dict[str, Any]]

    def child_request(self) -> dict[str, Any]:
        """What vlm_tui/training/merge_adapter.py reads on stdin."""
        return {
            "base_model": self.base_model,
            "adapter": str(self.adapter),
            "target": str(self.target),
            "chat_template": self.chat_template,
            "chat_template_jinja": self.chat_template_jinja,
            "sample": self.sample,
            "tolerance": LOGITS_TOLERANCE,
        }


def default_target(adapter_output: Path, step: int | None) -> Path:
    name = adapter_output.name + ("" if step is None else f"-checkpoint-{step}") + "-merged"
    return adapter_output.parent / name


def merge_request(
    run: RunPaths, *, checkpoint: int | None = None, to: str | None = None
) -> MergeRequest:
    """What to merge into where; UserError naming the field when it cannot be done."""
    config = run_config(run)
    adapter, is_adapter, step = saved_weights(config, checkpoint)
    if not is_adapter:
        raise UserError(
            "run", f"trained every weight: {adapter} already loads alone, there is nothing to merge"
        )
    output = Path(str(config.get("output_dir")))
    target = Path(to).expanduser().absolute() if to else default_target(output, step)
    if to is not None and not to.strip():
        raise UserError("to", "must not be empty")
    if target.exists():
        raise UserError("to", f"{target} exists; vlm-tui never writes over a folder (give --to)")
    if not target.parent.is_dir() or not os.access(target.parent, os.W_OK):
        raise UserError("to", f"{target.parent} is not a folder vlm-tui can write in")
    if target.resolve().is_relative_to(output.resolve()):
        raise UserError("to", f"must be outside the run's output {output}, which stays as it is")
    items = dataset_items(config, 1)
    sample = (
        items[0].messages
        if items
        else [{"role": "user", "content": [{"type": "text", "text": "Hello."}]}]
    )
    template, jinja = training_template(config)
    return MergeRequest(
        run=run,
        base_model=str(config["base_model"]),
        adapter=adapter,
        step=step,
        target=target,
        chat_template=template,
        chat_template_jinja=jinja,
        sample=sample,
    )
