"""A test-only axolotl plugin: asks for a graceful stop while the data loader forks its worker.

It reproduces the race of a lost graceful stop on purpose. Once a training step has run, the
next fork (the data loader starts a worker at each epoch) runs an at-fork callback that sends
SIGINT to the supervisor (the user's "stop (saves)") and then waits inside the callback while
the supervisor passes the stop on. A SIGINT handler that raises (axolotl's `sys.exit(0)`) runs
inside that callback, where Python prints "Exception ignored" and drops the SystemExit: the
training goes on. Last, it raises SIGINT in this process itself, still inside the callback, so
a handler of ours meets the same place whatever the supervisor sends.

Runs inside the training (it imports axolotl); listed under `plugins:` by the test.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from axolotl.integrations.base import BasePlugin
from transformers import TrainerCallback

PLUGIN_PATH = "tests.stop_in_fork_plugin.StopInForkPlugin"
# Printed when the callback asks, with the step, so the test knows where the stop was asked.
MARK = "stop-in-fork: asked at step"
# How long the callback waits for the supervisor's signal to land inside it.
LANDING_WINDOW_S = 3.0

_last_step: int | None = None  # None until a training step has run
_fired = False


def _ask_inside_the_fork() -> None:
    global _fired
    if _last_step is None or _fired:
        return
    _fired = True
    print(f"{MARK} {_last_step}", flush=True)
    os.kill(os.getppid(), signal.SIGINT)  # the supervisor: this is a one-process run
    deadline = time.monotonic() + LANDING_WINDOW_S
    while time.monotonic() < deadline:
        time.sleep(0.005)  # Python-level waits: a pending handler runs right here
    signal.raise_signal(signal.SIGINT)


class _ArmAfterAStep(TrainerCallback):  # type: ignore[misc]
    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        global _last_step
        if _last_step is None:
            os.register_at_fork(after_in_parent=_ask_inside_the_fork)
        _last_step = int(state.global_step)
        return control


class StopInForkPlugin(BasePlugin):  # type: ignore[misc]
    def post_trainer_create(self, cfg: Any, trainer: Any) -> None:
        # A fork at every epoch, as the trainer does by default (vlm-tui keeps its workers; an
        # evaluation's data loader, or a user's config, still forks mid-training).
        trainer.args.dataloader_persistent_workers = False

    def add_callbacks_post_trainer(self, cfg: Any, trainer: Any) -> list[Any]:
        return [_ArmAfterAStep()]
