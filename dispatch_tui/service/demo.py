"""A demo service area: stations, units, hospitals, staff, named places and a few pending calls.

Safe to run again: reference rows are inserted only where their code is new, and the demo calls
only into a database that has no calls yet. The area (Riverton) is fictional. The demo calls are
taken as the operator who ran the seed (the OS user, a dispatcher on the demo staff), or as alice
when that operator may not take calls; the report says who.
"""

from __future__ import annotations

import getpass
import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, literal_column, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from dispatch_tui.db.models import Call, Hospital, Place, Staff, Station, Unit
from dispatch_tui.rules import permissions, validation
from dispatch_tui.rules.errors import InvalidInput
from dispatch_tui.service.dispatch_service import DispatchService

log = logging.getLogger(__name__)

STATIONS = [
    ("S1", "Station 1 Downtown", 40.0000, -83.0000),
    ("S2", "Station 2 Northgate", 40.0450, -83.0100),
    ("S3", "Station 3 Eastside", 39.9900, -82.9400),
    ("S4", "Station 4 Westfield", 39.9850, -83.0700),
]

# (code, capability, station)
UNITS = [
    ("M1", "ALS", "S1"),
    ("M2", "ALS", "S1"),
    ("B1", "BLS", "S1"),
    ("M3", "ALS", "S2"),
    ("B2", "BLS", "S2"),
    ("B3", "BLS", "S2"),
    ("M4", "ALS", "S3"),
    ("B4", "BLS", "S3"),
    ("B5", "BLS", "S3"),
    ("M5", "ALS", "S4"),
    ("B6", "BLS", "S4"),
    ("M6", "ALS", "S4"),
]

HOSPITALS = [
    ("MERCY", "Mercy General", 40.0100, -82.9950, 12, ["trauma", "stroke", "stemi"]),
    ("STJ", "St. John's Medical Center", 40.0400, -83.0300, 8, ["stroke", "stemi", "obstetrics"]),
    ("CHILD", "Riverton Children's", 39.9950, -83.0150, 6, ["paediatric", "trauma"]),
    ("EAST", "Eastside Community", 39.9800, -82.9300, 4, ["obstetrics"]),
    ("UNIV", "University Hospital", 40.0250, -82.9700, 15, ["trauma", "stroke", "stemi", "burns"]),
]

STAFF = [
    ("alice", "Alice Moreno", "dispatcher", None),
    ("bob", "Bob Okafor", "dispatcher", None),
    ("carol", "Carol Lindqvist", "paramedic", "M1"),
    ("dave", "Dave Nakamura", "paramedic", "M3"),
    ("erin", "Erin Walsh", "paramedic", "M4"),
    ("frank", "Frank Adeyemi", "paramedic", "M5"),
    ("grace", "Grace Kowalski", "supervisor", None),
    ("admin", "Service Administrator", "admin", None),
]

PLACES = [
    ("Riverton Mall", "1200 Commerce Blvd", 40.0210, -82.9880),
    ("Central Station", "1 Union Sq", 40.0020, -83.0010),
    ("Lincoln High School", "455 Lincoln Ave", 40.0330, -83.0220),
    ("Riverside Park", "Riverside Dr & 5th St", 39.9960, -82.9790),
    ("Northgate Retirement Home", "88 Elm Ct", 40.0520, -83.0050),
    ("Eastside Stadium", "300 Stadium Way", 39.9870, -82.9350),
    ("Westfield Industrial Park", "Unit 7, Foundry Rd", 39.9800, -83.0800),
    ("City Library", "20 Market St", 40.0050, -82.9960),
]

CALLS = [
    dict(
        nature="Cardiac arrest, CPR in progress",
        place="Riverton Mall",
        determinant="09-E-1",
        caller_name="Security desk",
        caller_phone="555-0142",
    ),
    dict(
        nature="Fall, hip pain",
        place="Northgate Retirement Home",
        determinant="17-A-1",
        caller_name="Nurse Patel",
        caller_phone="555-0199",
    ),
    dict(
        nature="Breathing problems",
        place="Lincoln High School",
        determinant="06-D-1",
        caller_name="School office",
        caller_phone="555-0175",
    ),
    dict(
        nature="Sick person, fever",
        location="17 Maple St",
        priority=4,
        lat=40.0150,
        lon=-83.0200,
        caller_name="J. Harris",
        caller_phone="555-0110",
    ),
    dict(
        nature="Traffic collision, 2 vehicles",
        place="Central Station",
        determinant="29-B-1",
        caller_name="Passer-by",
        caller_phone="555-0133",
    ),
]


@dataclass(frozen=True, slots=True)
class SeedReport:
    stations: int
    units: int
    hospitals: int
    staff: int
    places: int
    calls: int
    os_user: str | None
    calls_taken_by: str | None = None  # whom the demo calls are recorded as taken by (if any)


def os_dispatcher() -> str | None:
    """The current OS user as a valid operator name, so the desk works at once."""
    try:
        return validation.username(getpass.getuser())
    except (InvalidInput, OSError, KeyError):
        return None


# Who takes the demo calls when the operator who ran the seed may not.
DEMO_DISPATCHER = "alice"


def seed(service: DispatchService) -> SeedReport:
    me = os_dispatcher()
    with service.sessions.begin() as s:
        counts = _reference(s, me)
    calls = 0
    with service.sessions() as s:
        has_calls = s.scalar(select(func.count()).select_from(Call))
        taker = _taker(s, me)
    if not has_calls:
        for spec in CALLS:
            service.create_call(taker, validation.CallIntake(**spec))  # type: ignore[arg-type]
            calls += 1
    return SeedReport(*counts, calls=calls, os_user=me, calls_taken_by=taker if calls else None)


def _taker(s: Session, me: str | None) -> str:
    """The operator the demo calls are recorded as taken by: the one who ran the seed, if the
    staff has them and their role takes calls (the audit log must not name someone who did
    nothing); otherwise the demo's dispatcher."""
    if me:
        found = s.execute(
            select(Staff.username, Staff.role).where(func.lower(Staff.username) == me.lower())
        ).first()
        if found is not None and permissions.may(found.role, "create_call"):
            return str(found.username)
    return DEMO_DISPATCHER


def _reference(s: Session, me: str | None) -> tuple[int, int, int, int, int]:
    def add(statement: Any) -> int:
        # RETURNING tells how many rows were new; ON CONFLICT DO NOTHING skips the others.
        return len(s.execute(statement.returning(literal_column("1"))).all())

    stations = sum(
        add(insert(Station).values(code=c, name=n, lat=la, lon=lo).on_conflict_do_nothing())
        for c, n, la, lo in STATIONS
    )
    station_ids = dict(s.execute(select(Station.code, Station.id)).all())
    positions = {c: (la, lo) for c, _, la, lo in STATIONS}
    units = 0
    for code, cap, st in UNITS:
        lat, lon = positions[st]
        units += add(
            insert(Unit)
            .values(
                code=code,
                capability=cap,
                station_id=station_ids[st],
                lat=lat,
                lon=lon,
                position_at=func.now(),
            )
            .on_conflict_do_nothing()
        )
    hospitals = sum(
        add(
            insert(Hospital)
            .values(code=c, name=n, lat=la, lon=lo, beds_available=b, capabilities=caps)
            .on_conflict_do_nothing()
        )
        for c, n, la, lo, b, caps in HOSPITALS
    )
    unit_ids = dict(s.execute(select(Unit.code, Unit.id)).all())
    people = list(STAFF)
    if me and me.lower() not in {p[0] for p in STAFF}:
        people.append((me, f"{me} (this computer's user)", "dispatcher", None))
    staff = sum(
        add(
            insert(Staff)
            .values(username=u, full_name=n, role=r, unit_id=unit_ids.get(unit) if unit else None)
            .on_conflict_do_nothing()
        )
        for u, n, r, unit in people
    )
    places = sum(
        add(insert(Place).values(name=n, address=a, lat=la, lon=lo).on_conflict_do_nothing())
        for n, a, la, lo in PLACES
    )
    return stations, units, hospitals, staff, places
