"""Errors a user can fix: shown as one line, never as a traceback."""

from __future__ import annotations


class UserError(Exception):
    """A bad value given by the user: names the field and what is allowed.

    Front-ends print `str(error)` as one line and exit with code 2; nothing is launched.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class SetupError(Exception):
    """The machine lacks something the launch needs (a package, a writable folder)."""
