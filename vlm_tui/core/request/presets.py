"""Named presets: the form's values saved as YAML, so a user can come back to a setup.

Presets live in the user's config folder, one file each; they hold settings (validated on load
with the same validators as flags), never an axolotl config.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from vlm_tui.core.errors import UserError
from vlm_tui.core.request.settings import FIELDS_BY_NAME, folder_name, validate_field

SUFFIX = ".yaml"


def presets_folder(environ: Mapping[str, str]) -> Path:
    base = environ.get("XDG_CONFIG_HOME") or str(Path(environ.get("HOME", "~")) / ".config")
    return Path(base).expanduser() / "vlm-tui" / "presets"


def preset_name(value: str) -> str:
    try:
        return folder_name(value)
    except ValueError as error:
        raise UserError("preset", f"{error} (got {value!r})") from None


def list_presets(folder: Path) -> list[str]:
    try:
        return sorted(path.stem for path in folder.glob(f"*{SUFFIX}") if path.is_file())
    except OSError:
        return []


def save_preset(folder: Path, name: str, values: Mapping[str, object]) -> Path:
    """Write a new preset; an existing one is never replaced (it is the user's)."""
    path = folder / f"{preset_name(name)}{SUFFIX}"
    unknown = sorted(set(values) - set(FIELDS_BY_NAME))
    if unknown:
        raise UserError(unknown[0], "unknown setting")
    folder.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(dict(values), sort_keys=False, allow_unicode=True)
    try:
        with path.open("x", encoding="utf-8") as stream:
            stream.write(text)
    except FileExistsError:
        raise UserError("preset", f"{name!r} already exists; choose another name") from None
    return path


def load_preset(folder: Path, name: str) -> dict[str, Any]:
    """The preset's settings, each checked; UserError names the first bad one."""
    path = folder / f"{preset_name(name)}{SUFFIX}"
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError("preset", f"no preset named {name!r} in {folder}") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
        raise UserError("preset", f"cannot read {path.name}: {error}".splitlines()[0]) from None
    if not isinstance(loaded, dict):
        raise UserError("preset", f"{path.name} must hold a mapping of settings")
    return {str(key): validate_field(str(key), value) for key, value in loaded.items()}
