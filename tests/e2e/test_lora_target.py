"""LoRA's target: the family's guess until the model's own layers are read; the user's stays."""

from __future__ import annotations

import subprocess
import sys

from vlm_tui.core.request.lora_target import (
    LanguageLayers,
    apply_found,
    finish_probe,
    target_is_ours,
)
from vlm_tui.core.request.model_family import model_family

GUESS = model_family("x/llava.invalid").lora_target_modules
FOUND = LanguageLayers(
    "model.text_model", ("mlp.down_proj", "self_attn.q_proj"), r"model\.text_model\..*", 4
)


def test_only_the_family_s_guess_is_replaced() -> None:
    ours = {"base_model": "x/llava.invalid", "chat_template": "llava", "adapter": "lora"}
    assert target_is_ours({**ours, "lora_target_modules": GUESS})
    # The user's own target, a full fine-tune, or lora_target_linear: left alone.
    assert not target_is_ours({**ours, "lora_target_modules": "q_proj"})
    assert not target_is_ours({**ours, "adapter": None, "lora_target_modules": GUESS})
    assert not target_is_ours({**ours, "lora_target_linear": True})
    # A family that cannot be told is not ours to judge either.
    assert not target_is_ours({"base_model": "x/y.invalid", "adapter": "lora"})


def test_the_found_target_replaces_the_guess_and_says_where() -> None:
    config = {"lora_target_modules": GUESS}
    line = apply_found(config, FOUND)
    assert config["lora_target_modules"] == FOUND.target
    assert line == (
        "LoRA on the language model's layers under model.text_model: 2 projections per layer,"
        " 4 modules"
    )


def test_a_model_that_cannot_be_read_keeps_the_guess_and_says_why() -> None:
    config = {"lora_target_modules": GUESS}
    line = apply_found(config, "OSError: not cached")
    assert config["lora_target_modules"] == GUESS
    assert line.startswith("LoRA target kept as the family's usual layers (")
    assert line.endswith("the model's own could not be read: OSError: not cached")


def test_a_probe_of_a_model_that_is_not_there_reports_an_error() -> None:
    child = subprocess.Popen(
        [sys.executable, "-m", "vlm_tui.training.model_layers", "/nonexistent.invalid/model"],
        env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    found = finish_probe(child)
    assert isinstance(found, str) and found, found
