"""An axolotl plugin that lets transformers' trackio callback work with axolotl 0.19's trackio.

Two gaps between the pinned packages, both measured on the demo:
- axolotl 0.19 validates `trackio_project_name` and exports it as TRACKIO_PROJECT_NAME, but
  transformers 5's TrackioCallback takes the project from `TrainingArguments.project` (default
  "huggingface") and nothing reads the variable: every run would land in "huggingface".
- transformers 5.16 calls `trackio.init(bucket_id=...)`, which trackio 0.19 (axolotl's pin) does
  not take: the training failed at its first step ("unexpected keyword argument 'bucket_id'").
  The callback's trackio is wrapped so that an argument this trackio lacks is left out when it
  is None (what it is without a Space); a value that would matter still fails loudly.
It also keeps the callback from publishing a static Space after training
(`trackio_static_space_id: False`), so a local run stays local.
"""

from __future__ import annotations

import inspect
from types import ModuleType
from typing import Any

from axolotl.integrations.base import BasePlugin

PLUGIN_PATH = "vlm_tui.training.trackio_bridge.TrackioBridgePlugin"


class _TrackioInitFits:
    """The trackio module, with an `init` that drops None arguments its version lacks."""

    def __init__(self, module: ModuleType) -> None:
        self._module = module
        self._accepted = set(inspect.signature(module.init).parameters)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)

    def init(self, **kwargs: Any) -> Any:
        fitting = {
            name: value
            for name, value in kwargs.items()
            if name in self._accepted or value is not None
        }
        return self._module.init(**fitting)


class TrackioBridgePlugin(BasePlugin):  # type: ignore[misc]
    def get_training_args(self, cfg: Any) -> dict[str, Any] | None:
        if not cfg.use_trackio or not cfg.trackio_project_name:
            return None
        return {"project": cfg.trackio_project_name, "trackio_static_space_id": False}

    def post_trainer_create(self, cfg: Any, trainer: Any) -> None:
        for callback in trainer.callback_handler.callbacks:
            module = getattr(callback, "_trackio", None)
            if type(callback).__name__ == "TrackioCallback" and isinstance(module, ModuleType):
                callback._trackio = _TrackioInitFits(module)
