"""Theme files: the shipped ones load, a broken one is refused in one line, and the start theme.

UI-free on purpose, like the module under test: nothing here imports Textual.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.helpers import REPO
from vlm_tui.theme_files import (
    ALLOWED_KEYS,
    DEFAULT_THEME,
    NO_COLOR_THEME,
    REQUIRED_COLOURS,
    THEMES_DIR,
    ThemeFileError,
    choose_theme,
    find_themes_dir,
    load_theme_specs,
    parse_theme_file,
)

PIP_WHEEL = (sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q")
SHIPPED = ("vlm-dark", "vlm-high-contrast", "vlm-light")

GOOD = """\
name: test-theme
dark: true
primary: "#112233"
secondary: "#abc"
accent: "orange"
foreground: "#ffffff"
background: "#000000"
surface: "#101010"
panel: "#202020"
warning: "#ffaa00"
error: "#ff0000"
success: "#00ff00"
variables:
  footer-key-foreground: "#ffaa00"
  input-selection-background: "#112233 40%"
"""


def _write(folder: Path, text: str, name: str = "broken.yaml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_themes_load_with_unique_names_and_every_required_colour() -> None:
    specs = load_theme_specs()
    names = [spec.name for spec in specs]
    assert sorted(names) == sorted(SHIPPED)
    assert len(set(names)) == len(names)
    for spec in specs:
        assert set(REQUIRED_COLOURS) <= set(spec.colours), spec.name
        assert spec.source.parent == THEMES_DIR
    assert DEFAULT_THEME in names
    assert NO_COLOR_THEME in names


def test_shipped_light_theme_is_light_and_the_others_dark() -> None:
    dark = {spec.name: spec.dark for spec in load_theme_specs()}
    assert dark == {"vlm-dark": True, "vlm-high-contrast": True, "vlm-light": False}


def test_a_good_file_is_read_as_written(tmp_path: Path) -> None:
    spec = parse_theme_file(_write(tmp_path, GOOD, "good.yaml"))
    assert spec.name == "test-theme"
    assert spec.dark is True
    assert spec.colours["secondary"] == "#abc"
    assert spec.colours["accent"] == "orange"
    assert "boost" not in spec.colours
    assert spec.variables["input-selection-background"] == "#112233 40%"
    with pytest.raises(TypeError):
        spec.colours["primary"] = "#000000"  # type: ignore[index]


def test_files_load_sorted_by_file_name(tmp_path: Path) -> None:
    _write(tmp_path, GOOD.replace("test-theme", "zeta"), "a.yaml")
    _write(tmp_path, GOOD.replace("test-theme", "alpha"), "b.yaml")
    _write(tmp_path, "not: a theme", "notes.txt")
    assert [spec.name for spec in load_theme_specs(tmp_path)] == ["zeta", "alpha"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (GOOD.replace('"#112233"\n', '"#11223"\n', 1), "primary: '#11223' is not a #rgb or"),
        (GOOD.replace('"#112233"\n', '"#11223g"\n', 1), "primary: '#11223g'"),
        (GOOD.replace('"orange"', '"rgb(1,2,3)"'), "accent: 'rgb(1,2,3)' is not a colour"),
        (GOOD.replace('"#112233"\n', "#112233\n", 1), 'write it quoted, like primary: "#1e88e5"'),
        (GOOD.replace('"#112233"\n', "12\n", 1), "primary: must be a quoted colour"),
        (GOOD.replace("name: test-theme\n", ""), "name: missing"),
        (GOOD.replace("test-theme", "Test Theme"), "name: 'Test Theme' must be lowercase"),
        (GOOD.replace("dark: true", "dark: maybe"), "dark: must be true or false"),
        (GOOD.replace('panel: "#202020"\n', ""), "panel: missing"),
        (GOOD + "bg: '#000'\n", "unknown key 'bg'; allowed keys: " + ", ".join(ALLOWED_KEYS)),
        (GOOD.replace("variables:\n", "variables: 3\nx:\n"), "unknown key 'x'"),
        (GOOD.split("variables:")[0] + "variables: [a, b]\n", "variables: must be a mapping"),
        (GOOD + "  Footer_Key: '#fff'\n", "variables: 'Footer_Key' is not a variable name"),
        (GOOD + "  border: ''\n", "variables.border: must be a non-empty one-line string"),
        ("- just\n- a list\n", "must be a YAML mapping"),
        ("", "must be a YAML mapping"),
        ("name: [unclosed\n", "invalid YAML at line 2"),
        (GOOD + "dark: false\n", "invalid YAML at line 16, column 1: duplicate key 'dark'"),
    ],
)
def test_a_malformed_file_is_one_line_naming_file_and_key(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ThemeFileError) as caught:
        load_theme_specs(tmp_path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    assert "broken.yaml" in message
    assert expected in message
    assert "\n" not in message
    assert caught.value.path == path


def test_a_name_used_twice_names_both_files(tmp_path: Path) -> None:
    _write(tmp_path, GOOD, "a.yaml")
    _write(tmp_path, GOOD, "b.yaml")
    with pytest.raises(ThemeFileError, match=r"b\.yaml: name: 'test-theme' is already used by a"):
        load_theme_specs(tmp_path)


def test_an_empty_or_missing_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ThemeFileError, match="no theme files"):
        load_theme_specs(tmp_path)
    with pytest.raises(ThemeFileError, match="theme folder not found"):
        load_theme_specs(tmp_path / "absent")


def test_a_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    (tmp_path / "latin.yaml").write_bytes(b"name: caf\xe9\n")
    with pytest.raises(ThemeFileError, match=r"latin\.yaml: cannot be read"):
        load_theme_specs(tmp_path)


AVAILABLE = list(SHIPPED)


@pytest.mark.parametrize(
    ("requested", "environ", "expected"),
    [
        (None, {}, DEFAULT_THEME),
        (None, {"NO_COLOR": ""}, DEFAULT_THEME),  # empty means unset, per no-color.org
        (None, {"NO_COLOR": "1"}, NO_COLOR_THEME),
        (None, {"NO_COLOR": "0"}, NO_COLOR_THEME),  # any non-empty value counts
        ("vlm-light", {}, "vlm-light"),
        ("vlm-light", {"NO_COLOR": "1"}, "vlm-light"),  # an explicit --theme wins
    ],
)
def test_choose_theme(requested: str | None, environ: dict[str, str], expected: str) -> None:
    assert choose_theme(requested, environ, AVAILABLE) == expected


def test_an_unknown_theme_lists_the_choices() -> None:
    with pytest.raises(ValueError) as caught:
        choose_theme("solarized", {}, AVAILABLE)
    assert str(caught.value) == "must be one of: vlm-dark, vlm-high-contrast, vlm-light"
    with pytest.raises(ValueError, match="must be one of"):
        choose_theme("", {}, AVAILABLE)


def test_a_missing_preferred_theme_falls_back() -> None:
    assert choose_theme(None, {"NO_COLOR": "1"}, ["vlm-dark", "vlm-light"]) == DEFAULT_THEME
    assert choose_theme(None, {}, ["vlm-light"]) == "vlm-light"
    with pytest.raises(ValueError, match="no themes"):
        choose_theme(None, {}, [])


def test_themes_beside_the_package_come_first_then_an_environments_installed_copy(
    tmp_path: Path,
) -> None:
    package = tmp_path / "site" / "vlm_tui"
    package.mkdir(parents=True)
    environment = tmp_path / "env"
    installed = environment / "share" / "vlm-tui" / "themes"
    installed.mkdir(parents=True)
    # A wheel install: nothing beside the package, the copy under the environment is found.
    assert find_themes_dir(package, [str(tmp_path / "none"), str(environment)]) == installed
    beside = tmp_path / "site" / "themes"
    beside.mkdir()
    assert find_themes_dir(package, [str(environment)]) == beside


def test_a_wheel_carries_the_themes(tmp_path: Path) -> None:
    # Built from a copy: an in-tree build would leave build/ in the checkout.
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    for name in ("vlm_tui", "themes"):
        shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    wheels = tmp_path / "wheels"
    built = subprocess.run(
        [*PIP_WHEEL, "-w", str(wheels), str(source)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = wheels.glob("vlm_tui-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    shipped = {Path(name).name for name in names if "/share/vlm-tui/themes/" in name}
    assert shipped == {path.name for path in THEMES_DIR.iterdir() if not path.name.startswith(".")}
