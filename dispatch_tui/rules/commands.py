"""Every dispatch action as a typed value: what the CLI, the command bar and the pane keys build.

The grammar (`rules/grammar.py`) turns a typed line into one of these; a desk key builds one
directly; the executor (`service/executor.py`) runs any of them and says what happened in one
line. A verb added here, to the grammar and to the executor works in the CLI and in the bar, and
in a pane as soon as a key builds it.

Values are kept as typed (strings, not yet validated): the service validates them, so bad input
gets the same one-line answer from every entry point.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass

from dispatch_tui.rules import validation
from dispatch_tui.rules.validation import CallChanges, CallIntake


@dataclass(frozen=True, slots=True)
class NewCall:
    intake: CallIntake
    # Taken although open calls near it may be the same incident (the dispatcher decided).
    new_anyway: bool = False


@dataclass(frozen=True, slots=True)
class AttachCaller:
    """Another caller for an open call: into its narrative, no new call."""

    call: str
    intake: CallIntake


@dataclass(frozen=True, slots=True)
class ShowCall:
    call: str


@dataclass(frozen=True, slots=True)
class CancelCall:
    call: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class CloseCall:
    call: str
    disposition: str = ""


@dataclass(frozen=True, slots=True)
class AddNote:
    call: str
    text: str
    corrects: str | None = None  # the narrative entry this one corrects


@dataclass(frozen=True, slots=True)
class UpdateCall:
    call: str
    changes: CallChanges


@dataclass(frozen=True, slots=True)
class ReopenCall:
    call: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Find:
    text: str
    days: float = 3.0
    limit: int = 50


@dataclass(frozen=True, slots=True)
class Dispatch:
    call: str
    units: tuple[str, ...]
    paramedic: str | None = None
    hospital: str | None = None
    divert_override: bool = False
    add: bool = False


@dataclass(frozen=True, slots=True)
class SetUnitStatus:
    unit: str
    status: str  # a UnitStatus value, or what was typed (the service refuses what is not one)
    hospital: str | None = None
    divert_override: bool = False
    reason: str = ""  # why, e.g. out of service


@dataclass(frozen=True, slots=True)
class Divert:
    unit: str
    call: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Queue:
    unit: str
    call: str


@dataclass(frozen=True, slots=True)
class Unqueue:
    unit: str


@dataclass(frozen=True, slots=True)
class AddPremise:
    """A hazard note on an address (a supervisor's)."""

    address: str
    note: str
    until: str | None = None


@dataclass(frozen=True, slots=True)
class RetirePremise:
    note_id: str


@dataclass(frozen=True, slots=True)
class Premises:
    """The hazard notes in force at an address."""

    address: str


@dataclass(frozen=True, slots=True)
class Geocode:
    """The places a typed address may be, from the gazetteer."""

    text: str
    limit: int = 5


@dataclass(frozen=True, slots=True)
class Acknowledge:
    """The crew has its dispatch (NEMSIS eTimes.04)."""

    unit: str


@dataclass(frozen=True, slots=True)
class LocateUnit:
    unit: str
    lat: str
    lon: str


@dataclass(frozen=True, slots=True)
class CancelUnit:
    unit: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class SetHospitalStatus:
    hospital: str
    status: str | None = None
    beds: str | None = None


@dataclass(frozen=True, slots=True)
class Recommend:
    call: str
    limit: int = 5


@dataclass(frozen=True, slots=True)
class Show:
    what: str  # calls, units, hospitals, places
    all: bool = False
    limit: int | None = None  # calls: at most this many, the newest (None: see the executor)


@dataclass(frozen=True, slots=True)
class Audit:
    call: str | None = None
    limit: int = 50


Command = (
    NewCall
    | AttachCaller
    | AddPremise
    | RetirePremise
    | Premises
    | ShowCall
    | CancelCall
    | CloseCall
    | AddNote
    | UpdateCall
    | ReopenCall
    | Find
    | Dispatch
    | Divert
    | Queue
    | Unqueue
    | SetUnitStatus
    | Acknowledge
    | LocateUnit
    | CancelUnit
    | SetHospitalStatus
    | Recommend
    | Show
    | Audit
    | Geocode
)

Write = (
    NewCall
    | AttachCaller
    | AddPremise
    | RetirePremise
    | CancelCall
    | CloseCall
    | AddNote
    | UpdateCall
    | ReopenCall
    | Dispatch
    | Divert
    | Queue
    | Unqueue
    | SetUnitStatus
    | Acknowledge
    | LocateUnit
    | CancelUnit
    | SetHospitalStatus
)
Read = ShowCall | Recommend | Show | Audit | Find | Premises | Geocode

# Commands that print a list: the desk's panes show these already, the CLI prints them.
LISTINGS = (Show, Audit)
# Commands that change something: each runs under a request id (`Once`).
WRITES = (
    NewCall,
    AttachCaller,
    AddPremise,
    RetirePremise,
    CancelCall,
    CloseCall,
    AddNote,
    UpdateCall,
    ReopenCall,
    Dispatch,
    Divert,
    Queue,
    Unqueue,
    SetUnitStatus,
    Acknowledge,
    LocateUnit,
    CancelUnit,
    SetHospitalStatus,
)


@dataclass(frozen=True, slots=True)
class Once:
    """A write's request id, and what it asks for (who, and the command as given).

    The database keeps the id of every write it carried out, with what the write made, under a
    unique key: a retry that repeats the id (after an answer was lost) gets the first outcome
    back instead of acting twice. An id given again for a different action is refused.
    """

    id: str
    fingerprint: str  # hex SHA-256 of the operator and the command

    @classmethod
    def of(cls, operator: str, command: Command, request_id: str | None = None) -> Once:
        """`request_id` as given (validated), or a new random one."""
        rid = validation.request_id(request_id) if request_id is not None else str(uuid.uuid4())
        said = f"{operator.strip().lower()}\n{command!r}".encode()
        return cls(rid, hashlib.sha256(said).hexdigest())
