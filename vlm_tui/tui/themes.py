"""Textual themes built from the YAML theme files, and their registration on an App.

Reading and validating the files is `vlm_tui.theme_files`' job (UI-free, shared with the CLI);
this module only maps a `ThemeSpec` onto `textual.theme.Theme`. It also checks each colour
against Textual's own parser, because the UI-free check can only see that a colour name is
well-formed, not that Textual knows it; a typo still comes out as one `ThemeFileError` line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.app import App
from textual.color import Color, ColorParseError
from textual.theme import Theme

from vlm_tui.theme_files import THEMES_DIR, ThemeFileError, ThemeSpec, load_theme_specs


def build_theme(spec: ThemeSpec) -> Theme:
    """The Textual theme for one spec; raises `ThemeFileError` for a colour Textual rejects."""
    for key, value in spec.colours.items():
        try:
            Color.parse(value)
        except ColorParseError:
            raise ThemeFileError(spec.source, f"{key}: {value!r} is not a colour") from None
    colours = spec.colours
    return Theme(
        name=spec.name,
        primary=colours["primary"],
        secondary=colours.get("secondary"),
        accent=colours.get("accent"),
        foreground=colours.get("foreground"),
        background=colours.get("background"),
        surface=colours.get("surface"),
        panel=colours.get("panel"),
        boost=colours.get("boost"),
        warning=colours.get("warning"),
        error=colours.get("error"),
        success=colours.get("success"),
        dark=spec.dark,
        # A copy: Theme keeps a mutable dict, the spec's mapping is read-only.
        variables=dict(spec.variables),
    )


def register_themes(app: App[Any], folder: Path = THEMES_DIR) -> list[str]:
    """Register every theme in `folder` on `app`; returns their names in file order.

    Every file is built before any is registered, so a broken file leaves the app untouched.
    """
    themes = [build_theme(spec) for spec in load_theme_specs(folder)]
    for theme in themes:
        app.register_theme(theme)
    return [theme.name for theme in themes]
