"""An axolotl plugin that carries a graceful stop through: a checkpoint, the weights, exit 0.

axolotl's own SIGINT handler (local rank 0) saves the model and calls `sys.exit(0)` from inside
the handler. When the signal lands while the main thread runs an at-fork callback (the data
loader forks a worker at every epoch) Python prints "Exception ignored" and drops the
SystemExit, and the training goes on; a data loader worker that inherited the handler exits
instead, and the training dies of it. A stop asked of a launcher fares no better: torchrun
answers SIGINT by signalling its ranks, killing them 30 s later (mid-save for a large model) and
exiting 1.

Here a stop is a flag, checked where the trainer can act on it. SIGINT sets it (a handler that
only assigns cannot be lost, wherever it runs), and so does the stop-request file the run's
supervisor writes (named by VLM_TUI_STOP_FILE), which needs no signal at all. At the end of every
optimizer step the ranks agree on it (one all-reduce of one number, so every rank stops at the
same step and none waits in a collective for another), and the trainer then saves a resumable
checkpoint and ends its loop; axolotl saves the model as at the end of any training and every
rank exits 0.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path
from types import FrameType
from typing import Any

import torch
from axolotl.integrations.base import BasePlugin
from transformers import TrainerCallback

from vlm_tui.core.records.folder import STOP_REQUEST_VARIABLE, armed_marker, taken_marker

PLUGIN_PATH = "vlm_tui.training.graceful_stop.GracefulStopPlugin"
# What the training prints when it acts on the stop (rank 0), for the log and the supervisor.
STOPPING_LINE = "vlm-tui: graceful stop at step"


class GracefulStopCallback(TrainerCallback):
    def __init__(self, stop_file: str | None) -> None:
        self.stop_file = stop_file
        self.asked = False
        self.acted = False

    def on_sigint(self, signum: int, frame: FrameType | None) -> None:
        # Nothing raised, nothing printed: this may run inside an at-fork callback or a lock.
        self.asked = True

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        # Here, not when the plugin loads: axolotl installs its own handler just before train().
        with contextlib.suppress(ValueError):  # not the main thread: keep whatever is there
            signal.signal(signal.SIGINT, self.on_sigint)
        # The supervisor needs no signal from now on (one would reach a launcher too).
        self._mark(state, armed_marker, "armed")
        return control

    def _mark(self, state: Any, marker: Any, text: str) -> None:
        """Tell this node's supervisor, through a file beside the stop request."""
        if self.stop_file is not None and state.is_local_process_zero:
            with contextlib.suppress(OSError):
                marker(Path(self.stop_file)).write_text(f"{text}\n", encoding="ascii")

    def stop_asked(self, args: Any) -> bool:
        asked = self.asked or (self.stop_file is not None and os.path.exists(self.stop_file))
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            flag = torch.tensor([1 if asked else 0], dtype=torch.int32, device=args.device)
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            asked = bool(flag.item())
        return asked

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        if self.acted or not self.stop_asked(args):
            return control
        self.acted = True
        # Taken: the supervisor must not signal a training that is ending and saving.
        self._mark(state, taken_marker, f"step {state.global_step}")
        # A checkpoint a resume goes on from, then the end of the loop: axolotl saves the model.
        control.should_save = True
        control.should_training_stop = True
        if state.is_world_process_zero:
            print(
                f"{STOPPING_LINE} {state.global_step}: saving a checkpoint and the model",
                flush=True,
            )
        return control


class GracefulStopPlugin(BasePlugin):  # type: ignore[misc]
    def add_callbacks_post_trainer(self, cfg: Any, trainer: Any) -> list[Any]:
        return [GracefulStopCallback(os.environ.get(STOP_REQUEST_VARIABLE) or None)]
