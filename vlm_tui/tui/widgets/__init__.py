"""Widgets of the TUI, one concept a file."""
