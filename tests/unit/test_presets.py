"""Presets: saved form values, validated on load, never overwritten."""

from __future__ import annotations

from pathlib import Path

import pytest

from vlm_tui.core.errors import UserError
from vlm_tui.core.request.presets import list_presets, load_preset, presets_folder, save_preset


def test_a_preset_round_trips_with_typed_values(tmp_path: Path) -> None:
    save_preset(tmp_path, "lora-64", {"lora_r": 64, "learning_rate": 1e-4, "full_finetune": False})
    assert list_presets(tmp_path) == ["lora-64"]
    assert load_preset(tmp_path, "lora-64") == {
        "lora_r": 64,
        "learning_rate": 1e-4,
        "full_finetune": False,
    }


def test_an_existing_preset_is_never_replaced(tmp_path: Path) -> None:
    save_preset(tmp_path, "mine", {"lora_r": 8})
    with pytest.raises(UserError, match="already exists"):
        save_preset(tmp_path, "mine", {"lora_r": 16})
    assert load_preset(tmp_path, "mine") == {"lora_r": 8}


@pytest.mark.parametrize("name", ["../escape", "", "a/b", ".hidden", "x" * 101])
def test_names_that_are_not_one_folder_name_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(UserError) as caught:
        save_preset(tmp_path, name, {"lora_r": 8})
    assert caught.value.field == "preset"
    assert not any(tmp_path.iterdir())


def test_a_hand_edited_bad_value_names_its_field(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("lora_r: 0\n")
    with pytest.raises(UserError) as caught:
        load_preset(tmp_path, "bad")
    assert caught.value.field == "lora_r"
    (tmp_path / "worse.yaml").write_text("[not, a, mapping]\n")
    with pytest.raises(UserError, match="mapping"):
        load_preset(tmp_path, "worse")
    with pytest.raises(UserError, match="no preset named"):
        load_preset(tmp_path, "absent")


def test_presets_live_in_the_users_config_folder() -> None:
    assert presets_folder({"XDG_CONFIG_HOME": "/cfg"}) == Path("/cfg/vlm-tui/presets")
    assert presets_folder({"HOME": "/home/u"}) == Path("/home/u/.config/vlm-tui/presets")
