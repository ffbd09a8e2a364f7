"""Typed errors of the domain, each with the exit code the CLI gives it.

The service raises only these for anything a user can cause; anything else is a bug, logged with
context and reported as "unexpected" (exit code 1).
"""

from __future__ import annotations

from datetime import datetime
from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    UNEXPECTED = 1
    INVALID = 2
    NOT_FOUND = 3
    CONFLICT = 4
    FORBIDDEN = 5
    UNAVAILABLE = 6
    OUTCOME_UNKNOWN = 7


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


class DuplicateSuspected(Conflict):
    """A new call looks like an open one (near it, or at its address, received lately): nothing
    was saved; attach the caller to one of them, or take it as a new call anyway."""

    kind = "duplicate"

    def __init__(self, message: str, candidates: list[dict[str, object]]) -> None:
        super().__init__(message)
        self.candidates = candidates


class Forbidden(DispatchError):
    """The operator's role does not allow the action."""

    exit_code = ExitCode.FORBIDDEN
    kind = "forbidden"


class Unavailable(DispatchError):
    """The database cannot be reached, or its schema is not the one this version expects."""

    exit_code = ExitCode.UNAVAILABLE
    kind = "unavailable"


class OutcomeUnknown(DispatchError):
    """The connection was lost while a change was being committed: it may or may not have been
    saved. Never reported as "nothing was changed"; the caller checks before doing it again."""

    exit_code = ExitCode.OUTCOME_UNKNOWN
    kind = "outcome_unknown"
    # The write's request id: the same write sent again under it is carried out only if the
    # first was not.
    request_id: str | None = None


# What a lost connection means depends on when it was lost.
NOTHING_CHANGED = "the dispatch database is unreachable; nothing was changed"
# A write sent to a server that takes none (a hot standby, or a login or session set read-only).
READ_ONLY = (
    "this server is read-only (a standby, or a read-only login): it takes no writes; "
    "nothing was changed"
)
IN_DOUBT = (
    "the connection to the dispatch database was lost while the change was being saved: "
    "it may or may not have been saved; look before doing it again"
)

# A commit the bound cut short (`service.commit_bound`): written on the server it was sent to,
# but no synchronous standby confirmed it; a failover now could lose it.
UNCONFIRMED = (
    "the change was saved on the primary, but no standby confirmed it in time (synchronous "
    "replication is stalled): it may be lost if the primary fails now; look before doing it again"
)


class AlreadyDone(Exception):
    """A write's request id names a write the database carried out before: nothing was done now.

    Raised by the service only to a caller that gave a request id; it carries what the first
    write made, and the executor answers with that outcome. Not an error a user caused."""

    def __init__(
        self,
        request_id: str,
        at: datetime,
        *,
        call_id: int | None = None,
        unit_id: int | None = None,
        hospital_id: int | None = None,
    ) -> None:
        super().__init__(f"request {request_id} was carried out already")
        self.request_id = request_id
        self.at = at
        self.call_id = call_id
        self.unit_id = unit_id
        self.hospital_id = hospital_id
