from __future__ import annotations

from vlm_tui.core.launch.secrets import REDACTED, is_secret_name, redact_environment


def test_named_and_pattern_secrets_are_redacted() -> None:
    env = {
        "HF_TOKEN": "hf_abcdefghijklmnop",
        "HUGGING_FACE_HUB_TOKEN": "hf_zzzzzzzzzzzz",
        "WANDB_API_KEY": "0123456789abcdef",
        "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG",
        "MY_DB_PASSWORD": "hunter2hunter2",
        "github_token": "ghp_xxxxxxxxxxxx",
        "PATH": "/usr/bin",
        "EMPTY_TOKEN": "",
    }
    shown = redact_environment(env)
    for name in (
        "HF_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
        "WANDB_API_KEY",
        "AWS_SECRET_ACCESS_KEY",
        "MY_DB_PASSWORD",
        "github_token",
    ):
        assert shown[name] == REDACTED
    assert shown["PATH"] == "/usr/bin"
    assert shown["EMPTY_TOKEN"] == ""
    assert not is_secret_name("MASTER_ADDR")
