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

And it lets a multi-process CPU run resume: the Trainer loads the optimizer's state with
`map_location=args.device`, which is `cpu:<local rank>` in such a run, a location torch's own
loader does not restore ("don't know how to restore data location ... tagged with cpu:0"); a
GPU run's `cuda:<n>` is one it knows. A CPU storage asked for `cpu:<n>` stays where it is.
"""

from __future__ import annotations

from typing import Any

import torch
from axolotl.integrations.base import BasePlugin

PLUGIN_PATH = "vlm_tui.training.cpu_placement.CpuPlacementPlugin"
# After torch's own deserialisers (cpu 10, cuda 20, mps 21, meta 25, ...): only what they leave.
CPU_INDEX_PRIORITY = 90


class CpuPlacementPlugin(BasePlugin):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__()
        if not torch.cuda.is_available():
            from axolotl.utils import environment

            environment.check_cuda_p2p_support = _no_peers
            torch.serialization.register_package(CPU_INDEX_PRIORITY, _no_tag, _on_cpu)

    def load_datasets(self, cfg: Any, preprocess: bool = False) -> None:
        if not torch.cuda.is_available():
            cfg.device_map = "cpu"
        # None: axolotl loads the datasets itself, as without the plugin.
        return None


def _no_peers() -> bool:
    # axolotl reads True as "nothing to disable"; NCCL is not used without GPUs anyway.
    return True


def _no_tag(storage: Any) -> str | None:
    return None  # saving is tagged by torch's own taggers


def _on_cpu(storage: Any, location: str) -> Any:
    if location.startswith("cpu:") and location[4:].isdigit():
        return storage
    return None
