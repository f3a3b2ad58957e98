"""The shipped themes register on a real App, switch cleanly, and keep their contrast promises."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from textual.app import App, ComposeResult
from textual.theme import BUILTIN_THEMES
from textual.widgets import Footer, Label

from vlm_tui.theme_files import ThemeFileError, ThemeSpec, load_theme_specs, parse_theme_file
from vlm_tui.tui.themes import build_theme, register_themes

SPECS = {spec.name: spec for spec in load_theme_specs()}
TEXT_COLOURS = ("foreground", "primary", "secondary", "accent", "warning", "error", "success")


class ThemedApp(App[None]):
    """The smallest app that shows text on the theme's colours."""

    def __init__(self) -> None:
        super().__init__()
        self.theme_names = register_themes(self)

    def compose(self) -> ComposeResult:
        yield Label("step 10/100  loss 1.234")
        yield Footer()


def _relative_luminance(colour: str) -> float:
    """WCAG 2 relative luminance of "#rrggbb" or "#rgb"."""
    digits = colour.lstrip("#")
    if len(digits) == 3:
        digits = "".join(d * 2 for d in digits)
    channels = [int(digits[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast_ratio(first: str, second: str) -> float:
    lighter, darker = sorted((_relative_luminance(first), _relative_luminance(second)))[::-1]
    return (lighter + 0.05) / (darker + 0.05)


def test_contrast_ratio_matches_known_values() -> None:
    assert contrast_ratio("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast_ratio("#fff", "#fff") == pytest.approx(1.0)
    assert contrast_ratio("#767676", "#ffffff") == pytest.approx(4.54, abs=0.01)


def test_every_shipped_theme_applies_on_a_running_app() -> None:
    async def scenario() -> None:
        app = ThemedApp()
        assert sorted(app.theme_names) == sorted(SPECS)
        async with app.run_test(size=(60, 10)) as pilot:
            for name in app.theme_names:
                app.theme = name
                await pilot.pause()
                assert app.current_theme.name == name
                # The colours reach the stylesheet, not only the Theme object.
                variables = app.get_css_variables()
                spec = SPECS[name]
                assert variables["background"].lower() == spec.colours["background"]
                assert variables["foreground"].lower() == spec.colours["foreground"]

    asyncio.run(scenario())


def test_shipped_variables_are_ones_textual_knows() -> None:
    # Catches a misspelt variable, which Textual would otherwise ignore without a word.
    known = set(BUILTIN_THEMES["textual-dark"].to_color_system().generate())
    for spec in SPECS.values():
        assert set(spec.variables) <= known, spec.name


def test_high_contrast_reaches_wcag_aaa_for_text() -> None:
    spec = SPECS["vlm-high-contrast"]
    colours = spec.colours
    assert contrast_ratio(colours["foreground"], colours["background"]) >= 7
    for key in TEXT_COLOURS:
        for ground in ("background", "surface", "panel"):
            ratio = contrast_ratio(colours[key], colours[ground])
            assert ratio >= 7, f"{key} on {ground}: {ratio:.2f}"


@pytest.mark.parametrize("name", sorted(SPECS))
def test_every_theme_reaches_wcag_aa_for_text(name: str) -> None:
    colours = SPECS[name].colours
    for key in TEXT_COLOURS:
        for ground in ("background", "surface", "panel"):
            ratio = contrast_ratio(colours[key], colours[ground])
            assert ratio >= 4.5, f"{name}: {key} on {ground}: {ratio:.2f}"


def test_a_colour_name_textual_does_not_know_is_one_line(tmp_path: Path) -> None:
    source = SPECS["vlm-dark"].source.read_text(encoding="utf-8")
    path = tmp_path / "typo.yaml"
    path.write_text(source.replace('accent: "#d19a66"', 'accent: "oranje"'), encoding="utf-8")
    spec: ThemeSpec = parse_theme_file(path)
    with pytest.raises(ThemeFileError, match=r"typo\.yaml: accent: 'oranje' is not a colour"):
        build_theme(spec)


def test_a_broken_file_registers_nothing(tmp_path: Path) -> None:
    good = SPECS["vlm-dark"].source.read_text(encoding="utf-8")
    (tmp_path / "a.yaml").write_text(good, encoding="utf-8")
    (tmp_path / "b.yaml").write_text(
        good.replace("vlm-dark", "other").replace('"#d19a66"', '"oranje"'), encoding="utf-8"
    )
    app: App[Any] = App()
    with pytest.raises(ThemeFileError, match=r"b\.yaml"):
        register_themes(app, tmp_path)
    assert "vlm-dark" not in app.available_themes
