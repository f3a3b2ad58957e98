"""What `vlm-tui try` asks of a finished run: which weights, and which prompts.

Read from the run folder alone (its config.yml and output): the base model, the weights the
training saved (the final ones or a checkpoint's, an adapter or a whole model), the chat
template it rendered rows with, and the rows to answer: held-out rows of its dataset when the
training kept some out, else its first rows (it trained on them: the answers show what it
learned, not how it generalises), then the user's own images and prompts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vlm_tui.core.data.dataset_formats import RowProblem, convert
from vlm_tui.core.data.dataset_rows import DatasetError, read_rows
from vlm_tui.core.data.run_dataset import local_chat_datasets
from vlm_tui.core.errors import UserError
from vlm_tui.core.records.folder import RunPaths
from vlm_tui.core.records.status_file import read_status
from vlm_tui.core.records.trainer_state_file import loss_at
from vlm_tui.core.records.values import finite
from vlm_tui.core.runs.checkpoints import checkpoint_steps

DEFAULT_ROWS = 4
DEFAULT_MAX_NEW_TOKENS = 32
# The prompt of a user's own image when they give no prompt.
IMAGE_PROMPT = "Describe this image."
ADAPTER_FILE = "adapter_config.json"
MODEL_FILE = "config.json"


@dataclass(frozen=True)
class TryItem:
    """One prompt to answer: the conversation up to the answer, and how to show it."""

    source: str  # "held-out row 3", "training row 1", "your prompt 2"
    messages: list[dict[str, Any]]
    prompt: str  # the last user text
    image: Path | None  # the first image, to show
    reference: str | None  # the dataset's answer


@dataclass(frozen=True)
class TryRequest:
    run: RunPaths
    base_model: str
    weights: Path  # the adapter or whole model folder tried
    adapter: bool
    step: int | None  # the checkpoint's step; None for the final weights
    chat_template: str | None
    chat_template_jinja: str | None
    bf16: bool
    max_new_tokens: int
    items: list[TryItem] = field(default_factory=list)

    def child_request(self) -> dict[str, Any]:
        """What vlm_tui/training/try_model.py reads on stdin."""
        return {
            "base_model": self.base_model,
            "processor": self.base_model,
            "weights": str(self.weights),
            "adapter": self.adapter,
            "chat_template": self.chat_template,
            "chat_template_jinja": self.chat_template_jinja,
            "bf16": self.bf16,
            "max_new_tokens": self.max_new_tokens,
            "items": [{"messages": item.messages} for item in self.items],
        }


def run_config(run: RunPaths) -> dict[str, Any]:
    """The axolotl config the run trained with."""
    try:
        loaded = yaml.safe_load(run.config.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise UserError("run", f"{run.run_id} has no readable config.yml ({error})") from None
    if not isinstance(loaded, dict) or not loaded.get("base_model"):
        raise UserError("run", f"{run.run_id}: config.yml names no base_model")
    return loaded


def holds_weights(folder: Path) -> bool:
    """Whether save_pretrained wrote an adapter or a whole model into `folder`."""
    return (folder / ADAPTER_FILE).is_file() or (folder / MODEL_FILE).is_file()


def saved_weights(config: dict[str, Any], checkpoint: int | None) -> tuple[Path, bool, int | None]:
    """The folder of the weights to try, whether they are an adapter, and the checkpoint's step."""
    output = Path(str(config.get("output_dir") or ""))
    steps = checkpoint_steps(output)
    if checkpoint is not None:
        if checkpoint not in steps:
            known = ", ".join(str(step) for step in sorted(steps)) or "none"
            raise UserError(
                "checkpoint", f"{output} has no checkpoint-{checkpoint} (checkpoints: {known})"
            )
        folder = steps[checkpoint]
    elif holds_weights(output):
        folder = output
    elif steps:
        checkpoint = max(steps)
        folder = steps[checkpoint]
    else:
        raise UserError("run", f"saved no weights yet (nothing in {output})")
    if (folder / ADAPTER_FILE).is_file():
        return folder, True, checkpoint
    if (folder / MODEL_FILE).is_file():
        return folder, False, checkpoint
    raise UserError("run", f"{folder} holds neither an adapter nor a model")


@dataclass(frozen=True)
class SavedWeights:
    """Weights a run saved that can be tried: the final ones or a checkpoint's."""

    step: int | None  # None: the final weights
    folder: Path
    loss: float | None  # the training loss logged last at or before them

    def label(self) -> str:
        which = "final" if self.step is None else f"step {self.step}"
        return which if self.loss is None else f"{which}  loss {self.loss:.4g}"


def weights_choices(run: RunPaths, config: dict[str, Any]) -> list[SavedWeights]:
    """The final weights (when saved) and then every checkpoint, newest first, with the loss
    each was saved at: the final loss from the run's record, a checkpoint's from its own
    trainer_state.json."""
    output = Path(str(config.get("output_dir") or ""))
    choices = []
    if holds_weights(output):
        choices.append(SavedWeights(None, output, finite(read_status(run).get("final_loss"))))
    for step, folder in sorted(checkpoint_steps(output).items(), reverse=True):
        if holds_weights(folder):
            choices.append(SavedWeights(step, folder, loss_at(folder, step)))
    return choices


def training_template(config: dict[str, Any]) -> tuple[str | None, str | None]:
    """The config's chat_template (a name axolotl knows) and chat_template_jinja, if set."""
    template, jinja = config.get("chat_template"), config.get("chat_template_jinja")
    return (
        template if isinstance(template, str) else None,
        jinja if isinstance(jinja, str) else None,
    )


def has_weights(run: RunPaths) -> bool:
    """Did the run save weights that `try` or `merge` can load (a dry run, or one that failed
    early, did not)?"""
    try:
        saved_weights(run_config(run), None)
    except UserError:
        return False
    return True


def _image_of(part: dict[str, Any], base: Path) -> Path | None:
    path = part.get("path")
    if not isinstance(path, str):
        return None
    found = Path(path).expanduser()
    return found if found.is_absolute() else base / found


def _item(source: str, messages: list[dict[str, Any]], base: Path) -> TryItem | None:
    """The conversation up to its last answer, with paths made absolute; None when a row has
    no answer to compare or an image that is not a local file."""
    last = max((i for i, turn in enumerate(messages) if turn["role"] == "assistant"), default=-1)
    if last < 1:
        return None
    asked: list[dict[str, Any]] = []
    image: Path | None = None
    prompt = ""
    for turn in messages[:last]:
        parts = []
        for part in turn["content"]:
            if part["type"] == "image":
                path = _image_of(part, base)
                if path is None:
                    return None  # a URL or inline image: not read here
                image = image or path
                parts.append({"type": "image", "path": str(path)})
            else:
                parts.append(part)
                if turn["role"] == "user":
                    prompt = str(part.get("text", ""))
        asked.append({**turn, "content": parts})
    reference = " ".join(
        str(part.get("text", "")) for part in messages[last]["content"] if part["type"] == "text"
    )
    return TryItem(source, asked, prompt, image, reference.strip())


def _rows(path: Path, label: str, wanted: int, start: int = 0) -> list[TryItem]:
    items: list[TryItem] = []
    try:
        for number, row in enumerate(read_rows(path)):
            if number < start or row.value is None:
                continue
            try:
                messages = convert(row.value).messages
            except RowProblem:
                continue
            item = _item(f"{label} {number + 1}", messages, row.file.parent)
            if item is not None:
                items.append(item)
            if len(items) >= wanted:
                break
    except DatasetError:
        return []
    return items


def _count_rows(path: Path) -> int:
    try:
        return sum(1 for _ in read_rows(path))
    except DatasetError:
        return 0


def dataset_items(config: dict[str, Any], wanted: int) -> list[TryItem]:
    """Rows the training kept out (test_datasets, or the last val_set_size of the dataset as
    axolotl 0.19 splits it: not shuffled), else its first rows."""
    if wanted <= 0:
        return []
    datasets = local_chat_datasets(config)
    held_out = [path for key, _, path in datasets if key == "test_datasets"]
    if held_out:
        return _rows(held_out[0], "held-out row", wanted)
    training = [path for key, _, path in datasets if key == "datasets"]
    if not training:
        return []
    size = config.get("val_set_size") or 0
    if isinstance(size, int | float) and size > 0:
        total = _count_rows(training[0])
        kept_out = math.ceil(size * total) if size < 1 else int(size)
        if 0 < kept_out < total:
            return _rows(training[0], "held-out row", wanted, start=total - kept_out)
    return _rows(training[0], "training row", wanted)


def own_items(images: list[str], prompts: list[str]) -> list[TryItem]:
    """The user's own prompts: each image with the prompt at its place (or the last prompt, or
    a plain description request), then prompts left over, as text alone."""
    items: list[TryItem] = []
    for index, image in enumerate(images):
        path = Path(image).expanduser()
        if not path.is_file():
            raise UserError("image", f"{image} is not a file")
        prompt = prompts[index] if index < len(prompts) else (prompts or [IMAGE_PROMPT])[-1]
        content = [{"type": "image", "path": str(path.resolve())}, {"type": "text", "text": prompt}]
        messages = [{"role": "user", "content": content}]
        items.append(TryItem(f"your image {index + 1}", messages, prompt, path, None))
    for index, prompt in enumerate(prompts[len(images) :], start=len(images)):
        messages = [{"role": "user", "content": [{"type": "text", "text": prompt}]}]
        items.append(TryItem(f"your prompt {index + 1}", messages, prompt, None, None))
    return items


def try_request(
    run: RunPaths,
    *,
    rows: int = DEFAULT_ROWS,
    images: list[str] | None = None,
    prompts: list[str] | None = None,
    checkpoint: int | None = None,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
) -> TryRequest:
    """What to load and ask for a run; UserError naming the field when it cannot be tried."""
    if rows < 0:
        raise UserError("rows", f"must be 0 or more, not {rows}")
    if not 1 <= max_new_tokens <= 4096:
        raise UserError("max_new_tokens", f"must be from 1 to 4096, not {max_new_tokens}")
    if any(not prompt.strip() for prompt in prompts or []):
        raise UserError("prompt", "must not be empty")
    config = run_config(run)
    weights, adapter, step = saved_weights(config, checkpoint)
    items = own_items(images or [], prompts or [])
    items = dataset_items(config, rows) + items
    if not items:
        raise UserError("rows", "nothing to ask: the dataset gave no rows; add --image or --prompt")
    template, jinja = training_template(config)
    return TryRequest(
        run=run,
        base_model=str(config["base_model"]),
        weights=weights,
        adapter=adapter,
        step=step,
        chat_template=template,
        chat_template_jinja=jinja,
        bf16=config.get("bf16") is True,
        max_new_tokens=max_new_tokens,
        items=items,
    )
