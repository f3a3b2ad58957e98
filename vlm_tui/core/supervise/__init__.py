"""The supervisor that owns a run: starts the training, records its output, stops it."""
