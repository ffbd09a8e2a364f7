"""The vocabulary of the domain: roles, capabilities and the statuses of units, calls, hospitals.

Values are stored as text in PostgreSQL and guarded there by CHECK constraints built from these
same enums, so the database and the code can never disagree on what a status may be.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    DISPATCHER = "dispatcher"
    PARAMEDIC = "paramedic"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"


class Capability(StrEnum):
    ALS = "ALS"
    BLS = "BLS"


class UnitStatus(StrEnum):
    AVAILABLE = "AVAILABLE"
    EN_ROUTE = "EN_ROUTE"
    ON_SCENE = "ON_SCENE"
    TRANSPORTING = "TRANSPORTING"
    AT_HOSPITAL = "AT_HOSPITAL"
    OUT_OF_SERVICE = "OUT_OF_SERVICE"


class CallStatus(StrEnum):
    RECEIVED = "RECEIVED"
    DISPATCHED = "DISPATCHED"
    ON_SCENE = "ON_SCENE"
    TRANSPORTING = "TRANSPORTING"
    AT_HOSPITAL = "AT_HOSPITAL"
    CLOSED = "CLOSED"
    CANCELLED = "CANCELLED"

    @property
    def is_open(self) -> bool:
        return self not in (CallStatus.CLOSED, CallStatus.CANCELLED)


class HospitalStatus(StrEnum):
    OPEN = "OPEN"
    DIVERSION = "DIVERSION"
    CLOSED = "CLOSED"


class HospitalCapability(StrEnum):
    TRAUMA = "trauma"
    STROKE = "stroke"
    STEMI = "stemi"
    PAEDIATRIC = "paediatric"
    BURNS = "burns"
    OBSTETRICS = "obstetrics"


OPEN_CALL_STATUSES = tuple(s for s in CallStatus if s.is_open)
