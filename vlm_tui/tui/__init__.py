"""The interactive front-end: Textual screens over the same core as `--no-ui`."""
