"""vlm-tui: launch and monitor vision-language model fine-tuning with Axolotl."""

__version__ = "0.1.0"
