"""Theme definition files: read and validate `themes/*.yaml`, and pick the theme to start with.

Colours live in YAML files rather than code so they can be tuned (or a theme added) without
touching Python. This module is UI-free on purpose: the CLI validates `--theme NAME` and
reports a broken theme file as one line before anything imports Textual.
`vlm_tui.tui.themes` turns the specs read here into Textual themes.

NO_COLOR (https://no-color.org): when it is set to a non-empty value and no `--theme` is given,
`choose_theme` picks the high-contrast theme, whose distinctions are in brightness rather than
hue and so survive the monochrome rendering Textual applies by itself when NO_COLOR is set.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

# Where the theme files are installed (pyproject's data-files), relative to an environment.
INSTALLED_THEMES = Path("share") / "vlm-tui" / "themes"


def find_themes_dir(package_dir: Path, prefixes: Sequence[str]) -> Path:
    """`themes/` beside the package (a checkout, an editable install), else the copy a wheel
    installs under an environment's `share/vlm-tui/themes`; the checkout's path when neither
    exists, so the error names where themes were expected."""
    beside = package_dir.parent / "themes"
    if beside.is_dir():
        return beside
    for prefix in prefixes:
        installed = Path(prefix) / INSTALLED_THEMES
        if installed.is_dir():
            return installed
    return beside


THEMES_DIR = find_themes_dir(
    Path(__file__).resolve().parent, list(dict.fromkeys((sys.prefix, sys.base_prefix)))
)

DEFAULT_THEME = "vlm-dark"
# Brightness, not hue, carries every distinction in this theme; see the module docstring.
NO_COLOR_THEME = "vlm-high-contrast"

REQUIRED_COLOURS = (
    "primary",
    "secondary",
    "accent",
    "foreground",
    "background",
    "surface",
    "panel",
    "warning",
    "error",
    "success",
)
OPTIONAL_COLOURS = ("boost",)
COLOUR_KEYS = REQUIRED_COLOURS + OPTIONAL_COLOURS
ALLOWED_KEYS = ("name", "dark", *COLOUR_KEYS, "variables")

# Lowercase so `--theme` is easy to type and cannot differ from a file's name only by case.
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_HEX = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
# Named colours ("white", "ansi_bright_red"); Textual checks the name itself when it builds.
_COLOUR_NAME = re.compile(r"^[a-z]+(?:_[a-z]+)*$")
# Textual CSS variable names, as written after "$" in a stylesheet.
_VARIABLE = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")


class ThemeFileError(Exception):
    """A theme file the user (or a packager) got wrong: one line naming the file and the key.

    Deliberately not a `ValueError`, so a caller that maps `ValueError` from `choose_theme` to a
    `--theme` usage error cannot mistake a broken file for a bad flag.
    """

    def __init__(self, path: Path, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


@dataclass(frozen=True)
class ThemeSpec:
    """One validated theme file; colours keyed by Textual's Theme field names."""

    name: str
    dark: bool
    colours: Mapping[str, str]
    variables: Mapping[str, str]
    source: Path


_MERGE_TAG = "tag:yaml.org,2002:merge"


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses duplicate keys, which PyYAML would silently let win."""


def _construct_unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    # Compare keys as written (every key a theme uses is a plain scalar); merge keys ("<<")
    # are left to PyYAML, which resolves them as safe_load does.
    seen: set[str] = set()
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _MERGE_TAG:
            continue
        if key_node.value in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key_node.value!r}", key_node.start_mark
            )
        seen.add(key_node.value)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping
)


def _yaml_problem(error: yaml.YAMLError) -> str:
    """PyYAML's multi-line message reduced to one line with the position."""
    if isinstance(error, yaml.MarkedYAMLError) and error.problem_mark is not None:
        mark = error.problem_mark
        problem = error.problem or error.context or "cannot be parsed"
        return f"invalid YAML at line {mark.line + 1}, column {mark.column + 1}: {problem}"
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else "cannot be parsed"
    return f"invalid YAML: {first_line}"


def _check_colour(path: Path, key: str, value: object) -> str:
    if value is None:
        # The usual cause: `primary: #123456` unquoted, which YAML reads as an empty value.
        raise ThemeFileError(
            path, f'{key}: missing a colour; write it quoted, like {key}: "#1e88e5"'
        )
    if not isinstance(value, str):
        raise ThemeFileError(path, f'{key}: must be a quoted colour like "#1e88e5"')
    text = value.strip()
    if text.startswith("#"):
        if not _HEX.match(text):
            raise ThemeFileError(path, f"{key}: {text!r} is not a #rgb or #rrggbb colour")
    elif not _COLOUR_NAME.match(text):
        raise ThemeFileError(
            path, f"{key}: {text!r} is not a colour; use #rgb, #rrggbb or a colour name"
        )
    return text


def _check_variables(path: Path, value: object) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ThemeFileError(path, "variables: must be a mapping of variable name to value")
    variables: dict[str, str] = {}
    for raw_key, raw_value in value.items():
        key = str(raw_key)
        if not isinstance(raw_key, str) or not _VARIABLE.match(raw_key):
            raise ThemeFileError(
                path, f"variables: {key!r} is not a variable name like 'footer-key-foreground'"
            )
        # Values are free-form Textual CSS ("#81a1c1 35%", "auto 90%", "bold"); Textual parses
        # them when the theme is applied, so only their shape is checked here.
        if not isinstance(raw_value, str) or not raw_value.strip() or "\n" in raw_value:
            raise ThemeFileError(path, f"variables.{key}: must be a non-empty one-line string")
        variables[key] = raw_value.strip()
    return variables


def parse_theme_file(path: Path) -> ThemeSpec:
    """Read and validate one theme file; any mistake raises `ThemeFileError`."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        raise ThemeFileError(path, f"cannot be read: {reason}") from None
    try:
        # A SafeLoader subclass: plain data only, never arbitrary Python objects.
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as error:
        raise ThemeFileError(path, _yaml_problem(error)) from None
    if not isinstance(data, dict):
        raise ThemeFileError(path, "must be a YAML mapping of keys such as name, dark, primary")

    unknown = [str(key) for key in data if key not in ALLOWED_KEYS]
    if unknown:
        raise ThemeFileError(
            path, f"unknown key {unknown[0]!r}; allowed keys: {', '.join(ALLOWED_KEYS)}"
        )

    name = data.get("name")
    if name is None:
        raise ThemeFileError(path, "name: missing; add a line like name: my-theme")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ThemeFileError(
            path, f"name: {name!r} must be lowercase letters, digits, '-' or '_' (up to 64)"
        )

    dark = data.get("dark")
    if not isinstance(dark, bool):
        raise ThemeFileError(path, "dark: must be true or false")

    colours: dict[str, str] = {}
    for key in COLOUR_KEYS:
        if key not in data:
            if key in REQUIRED_COLOURS:
                raise ThemeFileError(path, f'{key}: missing; add a line like {key}: "#1e88e5"')
            continue
        colours[key] = _check_colour(path, key, data[key])

    return ThemeSpec(
        name=name,
        dark=dark,
        colours=MappingProxyType(colours),
        variables=MappingProxyType(_check_variables(path, data.get("variables"))),
        source=path,
    )


def load_theme_specs(folder: Path = THEMES_DIR) -> list[ThemeSpec]:
    """Every `*.yaml` theme in `folder`, in file-name order; the first mistake raises.

    An empty or missing folder is an error too: the app ships its themes, so having none means
    a broken install, better said at start-up than as Textual's fallback colours.
    """
    if not folder.is_dir():
        raise ThemeFileError(folder, "theme folder not found")
    # Dot-files are editor leftovers (".#dark.yaml" lock links), never themes.
    paths = sorted(p for p in folder.glob("*.yaml") if not p.name.startswith("."))
    if not paths:
        raise ThemeFileError(folder, "no theme files (*.yaml) found")
    specs: list[ThemeSpec] = []
    first_file: dict[str, Path] = {}
    for path in paths:
        spec = parse_theme_file(path)
        if spec.name in first_file:
            raise ThemeFileError(
                path, f"name: {spec.name!r} is already used by {first_file[spec.name].name}"
            )
        first_file[spec.name] = path
        specs.append(spec)
    return specs


def no_color_requested(environ: Mapping[str, str]) -> bool:
    """True when NO_COLOR is set and non-empty, as no-color.org (and Rich) define it."""
    return environ.get("NO_COLOR", "") != ""


def choose_theme(
    requested: str | None, environ: Mapping[str, str], available: Sequence[str]
) -> str:
    """The theme to start with: an explicit `--theme` wins, then NO_COLOR, then the default.

    Raises `ValueError("must be one of: ...")` for a requested name not in `available`; the CLI
    prefixes it with `--theme:`. When the preferred default is missing (a deleted file), falls
    back to the default theme and then to the first available one rather than failing.
    """
    if requested is not None:
        if requested not in available:
            raise ValueError(f"must be one of: {', '.join(available)}")
        return requested
    preferred = NO_COLOR_THEME if no_color_requested(environ) else DEFAULT_THEME
    for name in (preferred, DEFAULT_THEME):
        if name in available:
            return name
    if available:
        return available[0]
    raise ValueError("no themes are available")
