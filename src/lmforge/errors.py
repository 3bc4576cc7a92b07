"""The one error type users see: what was wrong, where, and what to do."""

from __future__ import annotations


class LmforgeError(Exception):
    """A user-facing error. The CLI prints it without a traceback and exits non-zero."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class StagePending(LmforgeError):
    """A stage handed work to a scheduler and must be run again once it is done. The CLI exits 3."""
