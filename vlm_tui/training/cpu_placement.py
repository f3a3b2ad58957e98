"""An axolotl plugin that keeps the model on the CPU in multi-process runs on hosts without GPUs.

With WORLD_SIZE > 1 axolotl's config normalisation pins the model to `{"": LOCAL_RANK}`, a CUDA
device index; on a CPU-only host loading then fails with "Cannot access accelerator device when
none is available". The dataset hook runs after that normalisation and before the model is
loaded, so it is where the placement can still be corrected. On a host with CUDA it does nothing.
"""

from __future__ import annotations

from typing import Any

import torch
from axolotl.integrations.base import BasePlugin

PLUGIN_PATH = "vlm_tui.training.cpu_placement.CpuPlacementPlugin"


class CpuPlacementPlugin(BasePlugin):  # type: ignore[misc]
    def load_datasets(self, cfg: Any, preprocess: bool = False) -> None:
        if not torch.cuda.is_available():
            cfg.device_map = "cpu"
        # None: axolotl loads the datasets itself, as without the plugin.
        return None
