"""An axolotl plugin that keeps the model on the CPU in multi-process runs on hosts without GPUs.

With WORLD_SIZE > 1 axolotl's config normalisation pins the model to `{"": LOCAL_RANK}`, a CUDA
device index; on a CPU-only host loading then fails with "Cannot access accelerator device when
none is available". The dataset hook runs after that normalisation and before the model is
loaded, so it is where the placement can still be corrected. On a host with CUDA it does nothing.

It also answers axolotl's GPU peer-to-peer question for such a host: with WORLD_SIZE > 1, axolotl
asks torch whether GPU 0 reaches GPU 1 while it loads the config. A CPU build of torch raises an
AssertionError there, which axolotl catches; a CUDA build on a host without a driver (what the
package index serves, and what `make setup` installs) raises "Found no NVIDIA driver", which
ends every rank before step 0. Without GPUs there is no peer to reach. The plugin is registered
before that question is asked, so its constructor is where the answer can be given.
"""

from __future__ import annotations

from typing import Any

import torch
from axolotl.integrations.base import BasePlugin

PLUGIN_PATH = "vlm_tui.training.cpu_placement.CpuPlacementPlugin"


class CpuPlacementPlugin(BasePlugin):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__()
        if not torch.cuda.is_available():
            from axolotl.utils import environment

            environment.check_cuda_p2p_support = _no_peers

    def load_datasets(self, cfg: Any, preprocess: bool = False) -> None:
        if not torch.cuda.is_available():
            cfg.device_map = "cpu"
        # None: axolotl loads the datasets itself, as without the plugin.
        return None


def _no_peers() -> bool:
    # axolotl reads True as "nothing to disable"; NCCL is not used without GPUs anyway.
    return True
