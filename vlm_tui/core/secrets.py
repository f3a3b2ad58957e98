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


def redact_text(text: str, environ: Mapping[str, str]) -> str:
    """Remove secret values that leaked into a line we are about to show or store."""
    for name, value in environ.items():
        # Short values ("1", "true") would blank out ordinary words: only real secrets.
        if len(value) >= 8 and is_secret_name(name):
            text = text.replace(value, REDACTED)
    return text
