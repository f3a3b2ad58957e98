"""The embedded demo: where its tiny LLaVA-style model and dataset live, and how it trains.

Built offline on first use and cached (`vlm_tui.training.demo_builder`, run as a child with the
training stack), so the demo trains with real Axolotl on any machine, CPU included, in a few
seconds. This module only names paths and settings: the CLI imports it at start-up.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

DEMO_MODEL_NAME: Final = "vlm-tui-demo-llava"
# Bump when the recipe below changes: a new version builds into a new folder beside the old one.
DEMO_ASSETS_VERSION: Final = 1
# Axolotl's `chat_template:` value that matches the processor's template.
DEMO_CHAT_TEMPLATE: Final = "llava"
DEMO_PROMPT: Final = "What is this?"

# Measured on a 2-core CPU with axolotl 0.19 (cosine schedule): 64 rows / batch 4 x 2 epochs =
# 32 optimizer steps, about 15 s wall time of which 2 s is training; the logged loss (the answer's
# tokens only: the llava template's role markers mask the prompt) falls from about 6.3 to about
# 0.8. The high learning rate is what makes a random model learn this fast.
DEMO_TRAINING: Final[dict[str, int | float]] = {
    "num_epochs": 2,
    "batch_size": 4,
    "gradient_accumulation_steps": 1,
    "learning_rate": 0.01,
    "warmup_ratio": 0.0,
    "lora_r": 16,
    "lora_alpha": 32,
    "lora_dropout": 0.0,
    "sequence_len": 128,
    "image_size": 32,
    "logging_steps": 1,
}

# Environment for the demo's training child. Torch's default of one thread per core collapses
# when another process holds a core (measured on 2 cores with one busy: training 3.4 s instead
# of 1.7 s, and up to 70 s under heavier load); one thread is as fast when idle.
DEMO_ENVIRONMENT: Final[Mapping[str, str]] = {"OMP_NUM_THREADS": "1"}

IMAGE_SIZE: Final = 32
NUM_IMAGES: Final = 64

# Written last by the builder: its presence is what `demo_assets_ready` trusts.
READY_MARKER: Final = "READY.json"


@dataclass(frozen=True)
class DemoAssets:
    """Where the demo lives; see `demo_asset_paths`."""

    root: Path  # the cache folder of the demo
    model_dir: Path  # the saved model + processor + tokenizer
    dataset_path: Path  # the .jsonl file (axolotl `chat_template` format)


def demo_cache_root(environ: Mapping[str, str]) -> Path:
    """$VLM_TUI_CACHE_DIR/demo, else $XDG_CACHE_HOME/vlm-tui/demo, else ~/.cache/vlm-tui/demo.

    Always absolute: the dataset names its images by absolute path.
    """
    if explicit := environ.get("VLM_TUI_CACHE_DIR"):
        root = Path(explicit).expanduser() / "demo"
    elif xdg := environ.get("XDG_CACHE_HOME"):
        root = Path(xdg).expanduser() / "vlm-tui" / "demo"
    else:
        home = Path(environ["HOME"]) if environ.get("HOME") else Path.home()
        root = home / ".cache" / "vlm-tui" / "demo"
    return Path(os.path.abspath(root))


def version_dir(root: Path) -> Path:
    return root / f"v{DEMO_ASSETS_VERSION}"


def demo_asset_paths(root: Path) -> DemoAssets:
    """The paths of the demo under `root`; pure, touches nothing."""
    folder = version_dir(root)
    return DemoAssets(
        root=root,
        model_dir=folder / "model",
        dataset_path=folder / "data" / "demo.jsonl",
    )


def demo_assets_ready(assets: DemoAssets) -> bool:
    """True when a complete build is in place (its marker is written last, before the rename)."""
    return (assets.model_dir.parent / READY_MARKER).is_file()
