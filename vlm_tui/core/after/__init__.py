"""After a run: what `vlm-tui try` asks of which saved weights, and the child that answers."""
