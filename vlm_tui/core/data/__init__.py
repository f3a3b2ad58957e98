"""The user's dataset: its formats, a check of every row, the run's own copy, token lengths."""
