"""The axolotl plugins vlm-tui ships (`vlm_tui/training/`), by the names a config lists them.

The launch adds them to every config; the run history leaves them out when it compares configs.
"""

from __future__ import annotations

# Imported only inside the training processes.
CPU_PLACEMENT_PLUGIN = "vlm_tui.training.cpu_placement.CpuPlacementPlugin"
# Every run: a graceful stop ends at a step boundary with a checkpoint and the weights, and
# the data loader's workers are forked once, not at every epoch.
GRACEFUL_STOP_PLUGIN = "vlm_tui.training.graceful_stop.GracefulStopPlugin"
DATA_WORKERS_PLUGIN = "vlm_tui.training.data_workers.PersistentDataWorkersPlugin"
# A config's `role_boundaries` reach axolotl 0.19's collator in the form it reads.
ROLE_BOUNDARIES_PLUGIN = "vlm_tui.training.role_boundaries.RoleBoundariesPlugin"
# transformers' trackio callback gets the project and an init that axolotl's trackio takes.
TRACKIO_BRIDGE_PLUGIN = "vlm_tui.training.trackio_bridge.TrackioBridgePlugin"
VLM_TUI_PLUGINS = (
    CPU_PLACEMENT_PLUGIN,
    GRACEFUL_STOP_PLUGIN,
    DATA_WORKERS_PLUGIN,
    ROLE_BOUNDARIES_PLUGIN,
    TRACKIO_BRIDGE_PLUGIN,
)
