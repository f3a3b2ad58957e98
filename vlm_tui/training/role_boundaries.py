"""An axolotl plugin that hands axolotl 0.19 its `role_boundaries` in the form it reads.

axolotl's config object turns each `role_boundaries` entry of a YAML into a DictDefault, whose
missing attributes read None: its collator takes `model_dump` for a method and calls None, so
every run with `role_boundaries` in its config fails before step 0 ("'NoneType' object is not
callable"). vlm-tui writes them for families whose axolotl strategy has no role markers (LLaVA),
so that only the assistant's tokens carry labels. Before the trainer is built (the model loads
first), the entries become axolotl's own RoleBoundarySpec, which is what the collator expects.
"""

from __future__ import annotations

from typing import Any

from axolotl.integrations.base import BasePlugin

PLUGIN_PATH = "vlm_tui.training.role_boundaries.RoleBoundariesPlugin"


class RoleBoundariesPlugin(BasePlugin):  # type: ignore[misc]
    def pre_model_load(self, cfg: Any) -> None:
        specs = cfg.get("role_boundaries")
        if not specs:
            return
        from axolotl.utils.schemas.multimodal import RoleBoundarySpec

        cfg.role_boundaries = [
            spec if isinstance(spec, RoleBoundarySpec) else RoleBoundarySpec(**dict(spec))
            for spec in specs
        ]
