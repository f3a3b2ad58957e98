"""Code that runs inside the training processes (imports axolotl and torch; never the UI's)."""
