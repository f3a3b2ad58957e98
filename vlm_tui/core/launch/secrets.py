"""Secret environment values: passed to the training, never shown or written by us."""

from __future__ import annotations

from collections.abc import Mapping

REDACTED = "<redacted>"
_KNOWN_SECRETS = frozenset(
    {"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "WANDB_API_KEY", "AWS_SECRET_ACCESS_KEY"}
)
_SECRET_WORDS = ("TOKEN", "SECRET", "PASSWORD", "KEY")


def is_secret_name(name: str) -> bool:
    upper = name.upper()
    return upper in _KNOWN_SECRETS or any(word in upper for word in _SECRET_WORDS)


def redact_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """A copy safe to show or store: secret values replaced, names kept."""
    return {
        name: (REDACTED if is_secret_name(name) and value else value)
        for name, value in sorted(environ.items())
    }
