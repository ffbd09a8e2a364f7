"""Typed errors of the domain, each with the exit code the CLI gives it.

The service raises only these for anything a user can cause; anything else is a bug, logged with
context and reported as "unexpected" (exit code 1).
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    UNEXPECTED = 1
    INVALID = 2
    NOT_FOUND = 3
    CONFLICT = 4
    FORBIDDEN = 5
    UNAVAILABLE = 6


class DispatchError(Exception):
    """Base of every error a user can cause. `str(err)` is one line, fit to show as is."""

    exit_code: ExitCode = ExitCode.UNEXPECTED
    kind: str = "error"

    def __init__(self, message: str) -> None:
        # Messages often echo what a user typed; a newline or an escape sequence in it must not
        # split the CLI's one `error:` line or reach the terminal. One printable line, always.
        message = "".join(ch if ch.isprintable() else "?" for ch in message)
        super().__init__(message)
        self.message = message


class InvalidInput(DispatchError):
    """The request itself is malformed: bad code, wrong type, text too long, unknown status."""

    exit_code = ExitCode.INVALID
    kind = "invalid"


class NotFound(DispatchError):
    """A call, unit, hospital or person named in the request does not exist."""

    exit_code = ExitCode.NOT_FOUND
    kind = "not_found"


class Conflict(DispatchError):
    """The state changed under the caller (another desk got there first) or forbids the step."""

    exit_code = ExitCode.CONFLICT
    kind = "conflict"


class Forbidden(DispatchError):
    """The operator's role does not allow the action."""

    exit_code = ExitCode.FORBIDDEN
    kind = "forbidden"


class Unavailable(DispatchError):
    """The database cannot be reached, or its schema is not the one this version expects."""

    exit_code = ExitCode.UNAVAILABLE
    kind = "unavailable"
