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


class Interrupted(KeyboardInterrupt):
    """Training stopped on a signal after saving a checkpoint. The CLI exits 128 + the signal's
    number, as a shell reports a process the signal ended: 130 for Ctrl-C (SIGINT), 143 for
    SIGTERM. A KeyboardInterrupt, so everything that cleans up after Ctrl-C does so here too."""

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(message)
        self.signum = signum
        self.message = message

    @property
    def exit_code(self) -> int:
        return 128 + self.signum
