"""An axolotl plugin that keeps the data loader's worker processes across epochs.

axolotl starts one data-loader worker per GPU (one on a CPU) and the trainer forks it anew at
every epoch. Forking a process whose other threads (the collective backend's, torch's pools)
may hold a lock at that moment can leave the new worker stuck inside fork, and the training
waits on it forever: seen here on 2-process CPU runs of the demo, whose epochs last a second,
about once in 60 runs. Persistent workers fork once per run instead of once per epoch, and
start each epoch without the fork's cost. The plugin changes nothing when there are no workers.
"""

from __future__ import annotations

from typing import Any

from axolotl.integrations.base import BasePlugin

PLUGIN_PATH = "vlm_tui.training.data_workers.PersistentDataWorkersPlugin"


class PersistentDataWorkersPlugin(BasePlugin):  # type: ignore[misc]
    def post_trainer_create(self, cfg: Any, trainer: Any) -> None:
        # The train dataloader is built inside trainer.train(), after this hook.
        if trainer.args.dataloader_num_workers > 0:
            trainer.args.dataloader_persistent_workers = True
