"""The single-process command and the environment the training gets."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from vlm_tui.core.errors import SetupError
from vlm_tui.core.launch.command import (
    require_training_stack,
    single_process_argv,
    training_environment,
)


def test_single_process_command_is_the_guides() -> None:
    argv = single_process_argv(Path("/runs/r/config.yml"))
    assert argv == (sys.executable, "-m", "axolotl.cli.train", "/runs/r/config.yml")


def test_training_environment_is_live_private_and_keeps_user_choices() -> None:
    env = training_environment(
        {"PATH": "/bin", "HF_HUB_DISABLE_PROGRESS_BARS": "1", "AXOLOTL_DO_NOT_TRACK": "0"},
        offline=False,
    )
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["AXOLOTL_DO_NOT_TRACK"] == "0"  # the user's own choice stands
    assert "HF_HUB_DISABLE_PROGRESS_BARS" not in env  # the progress bar is what we read
    assert "HF_HUB_OFFLINE" not in env
    assert training_environment({}, offline=False)["AXOLOTL_DO_NOT_TRACK"] == "1"
    offline = training_environment({}, offline=True)
    assert offline["HF_HUB_OFFLINE"] == "1" and offline["HF_DATASETS_OFFLINE"] == "1"


def test_a_missing_training_package_is_one_line_with_the_fix() -> None:
    with pytest.raises(SetupError) as caught:
        require_training_stack(("surely_not_an_installed_module",))
    assert "pip install 'vlm-tui[train]'" in str(caught.value)
    require_training_stack(("json",))
