"""The words every view shows, written once: the TUI and `--no-ui` render them from here."""
