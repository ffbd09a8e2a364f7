"""A demo service area: stations, units, hospitals, staff, named places and a few pending calls,
on a gazetteer of its own streets.

Safe to run again: reference rows are inserted only where their code is new, the gazetteer is
loaded by its keys (nothing is added twice), and the demo calls only into a database that has no
calls yet. The area (Riverton) is fictional. The demo calls are taken as the operator who ran
the seed (the OS user, a dispatcher on the demo staff), or as alice when that operator may not
take calls; the report says who.

Riverton's streets are a grid (`GRID`): streets running east-west every 0.005° of latitude,
avenues running north-south every 0.005° of longitude, a few of them boulevards. Numbers go up
by 100 a block away from Main St (north and south, `N`/`S`) and from Union Ave (east and west,
`E`/`W`), even on the north and east sides. Every block face has its houses; the stations, the
hospitals and the named places each have the address their position gives them.
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
from dispatch_tui.rules.addresses import (
    AddressRow,
    GazetteerImport,
    StreetLine,
    address_row,
    street_line,
)
from dispatch_tui.rules.errors import InvalidInput
from dispatch_tui.service import gazetteer_import
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

# Each place's address is the one the demo gazetteer gives its position (`address_at`), so a
# place typed as its address finds the place (a test holds them to it).
PLACES = [
    ("Riverton Mall", "240 E Commerce Blvd", 40.0210, -82.9880),
    ("Central Station", "41 N Union Ave", 40.0020, -83.0010),
    ("Lincoln High School", "661 N Lincoln Ave", 40.0330, -83.0220),
    ("Riverside Park", "80 S Riverside Dr", 39.9960, -82.9790),
    ("Northgate Retirement Home", "1040 N Parker Ave", 40.0520, -83.0050),
    ("Eastside Stadium", "260 S Stadium Way", 39.9870, -82.9350),
    ("Westfield Industrial Park", "1602 W Foundry Rd", 39.9800, -83.0800),
    ("City Library", "80 E Market St", 40.0050, -82.9960),
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
        location="408 W Maple St",  # no coordinates: the gazetteer gives them
        priority=4,
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
    # The gazetteer's address points and street lines written by this seed (0: there already).
    address_points: int = 0
    street_segments: int = 0


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
    # Before the calls: their addresses are looked up in it.
    loaded = seed_gazetteer(service)
    calls = 0
    with service.sessions() as s:
        has_calls = s.scalar(select(func.count()).select_from(Call))
        taker = _taker(s, me)
    if not has_calls:
        for spec in CALLS:
            service.create_call(taker, validation.CallIntake(**spec))  # type: ignore[arg-type]
            calls += 1
    return SeedReport(
        *counts,
        calls=calls,
        os_user=me,
        calls_taken_by=taker if calls else None,
        address_points=loaded.points,
        street_segments=loaded.segments,
    )


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


# -- the gazetteer: Riverton's street grid ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Grid:
    """Riverton's streets: where the grid starts, its step, and where the numbers start."""

    south: float = 39.975
    west: float = -83.085
    step: float = 0.005
    base_lat: float = 40.0  # Main St: N and S numbers start here
    base_lon: float = -83.0  # Union Ave: E and W numbers start here
    houses: int = 8  # on each side of each block
    setback: float = 0.0002  # how far a house stands from the street's middle, in degrees
    city: str = "Riverton"
    postcode: str = "43299"
    # Streets running east-west, south to north; avenues running north-south, west to east.
    streets: tuple[str, ...] = (
        "Ash St",
        "Foundry Rd",
        "Birch St",
        "Cedar St",
        "Dogwood St",
        "Main St",
        "Market St",
        "Chestnut St",
        "Maple St",
        "Commerce Blvd",
        "Hickory St",
        "Juniper St",
        "Laurel St",
        "Magnolia St",
        "Poplar St",
        "Sycamore St",
        "Walnut St",
        "Willow St",
    )
    avenues: tuple[str, ...] = (
        "Adams Ave",
        "Baker Ave",
        "Clark Ave",
        "Dexter Ave",
        "Euclid Ave",
        "Franklin Blvd",
        "Grant Ave",
        "Harrison Ave",
        "Irving Ave",
        "Jackson Ave",
        "Kent Ave",
        "Lafayette Ave",
        "Monroe Ave",
        "Lincoln Ave",
        "Newton Ave",
        "Oliver Ave",
        "Parker Ave",
        "Union Ave",
        "Quincy Ave",
        "Sherman Ave",
        "Taylor Ave",
        "Riverside Dr",
        "Vernon Ave",
        "University Blvd",
        "Warren Ave",
        "Webster Ave",
        "York Ave",
        "Zane Ave",
        "Hamilton Ave",
        "Garfield Ave",
        "Stadium Way",
        "Hayes Ave",
        "Pierce Ave",
    )

    def street_lat(self, i: int) -> float:
        return round(self.south + i * self.step, 6)

    def avenue_lon(self, j: int) -> float:
        return round(self.west + j * self.step, 6)

    @property
    def north(self) -> float:
        return self.street_lat(len(self.streets) - 1)

    @property
    def east(self) -> float:
        return self.avenue_lon(len(self.avenues) - 1)


GRID = Grid()
SOURCE = "demo"


def _number(offset: float, even_side: bool, grid: Grid = GRID) -> int:
    """The number of a house `offset` degrees from where its street's numbers start: 100 a
    block, 2 to 98 along it, even on the north or east side."""
    blocks = abs(offset) / grid.step
    block = int(blocks + 1e-9)
    along = blocks - block
    return 100 * block + 2 * (1 + int(along * 49 + 1e-9)) + (0 if even_side else 1)


def _on_street(i: int, lon: float, lat: float, grid: Grid = GRID) -> tuple[str, str]:
    """(number, street) of a position beside street `i` (east-west)."""
    offset = lon - grid.base_lon
    side = "E" if offset >= 0 else "W"
    return str(_number(offset, lat >= grid.street_lat(i))), f"{side} {grid.streets[i]}"


def _on_avenue(j: int, lat: float, lon: float, grid: Grid = GRID) -> tuple[str, str]:
    """(number, street) of a position beside avenue `j` (north-south)."""
    offset = lat - grid.base_lat
    side = "N" if offset >= 0 else "S"
    return str(_number(offset, lon >= grid.avenue_lon(j))), f"{side} {grid.avenues[j]}"


def address_at(lat: float, lon: float, grid: Grid = GRID) -> str:
    """The address Riverton gives a position: on the nearest street or avenue (the street when
    both are as near), numbered by where it is along it (`240 E Commerce Blvd`)."""
    i = min(max(round((lat - grid.south) / grid.step), 0), len(grid.streets) - 1)
    j = min(max(round((lon - grid.west) / grid.step), 0), len(grid.avenues) - 1)
    # A degree of longitude is shorter than one of latitude, by the cosine of the latitude.
    to_street = abs(lat - grid.street_lat(i))
    to_avenue = abs(lon - grid.avenue_lon(j)) * 0.766
    number, street = (
        _on_street(i, lon, lat, grid)
        if to_street <= to_avenue + 1e-9
        else _on_avenue(j, lat, lon, grid)
    )
    return f"{number} {street}"


def _house(number: str, street: str, lat: float, lon: float, grid: Grid) -> AddressRow:
    row = address_row(
        number,
        street,
        round(lat, 6),
        round(lon, 6),
        city=grid.city,
        postcode=grid.postcode,
        key=f"{street.lower()}|{number}",
    )
    assert isinstance(row, AddressRow), f"the demo grid made a bad address: {number} {street}"
    return row


def _line(street: str, block: int, a: tuple[float, float], b: tuple[float, float]) -> StreetLine:
    """One block of a street (named with its side of Main St or Union Ave, as its houses
    are), as (lon, lat) points."""
    line = street_line(street, [list(a), list(b)], city=GRID.city, key=f"{street.lower()}|{block}")
    assert isinstance(line, StreetLine), f"the demo grid made a bad line: {street}"
    return line


def gazetteer_rows(grid: Grid = GRID) -> list[AddressRow | StreetLine]:
    """Riverton's gazetteer, the same every time: the houses on every block face, each block of
    each street as a line, and the stations, hospitals and places at their own addresses."""
    houses: dict[str, AddressRow] = {}
    lines: list[StreetLine] = []
    share = [(k + 0.5) / grid.houses for k in range(grid.houses)]
    for i, _ in enumerate(grid.streets):
        lat = grid.street_lat(i)
        for j in range(len(grid.avenues) - 1):
            west, east = grid.avenue_lon(j), grid.avenue_lon(j + 1)
            named = f"{'E' if west >= grid.base_lon else 'W'} {grid.streets[i]}"
            lines.append(_line(named, j, (west, lat), (east, lat)))
            for f in share:
                lon = west + (east - west) * f
                for side in (grid.setback, -grid.setback):
                    number, street = _on_street(i, lon, lat + side, grid)
                    row = _house(number, street, lat + side, lon, grid)
                    houses[row.source_key] = row
    for j, _ in enumerate(grid.avenues):
        lon = grid.avenue_lon(j)
        for i in range(len(grid.streets) - 1):
            south, north = grid.street_lat(i), grid.street_lat(i + 1)
            named = f"{'N' if south >= grid.base_lat else 'S'} {grid.avenues[j]}"
            lines.append(_line(named, i, (lon, south), (lon, north)))
            for f in share:
                lat = south + (north - south) * f
                for side in (grid.setback, -grid.setback):
                    number, street = _on_avenue(j, lat, lon + side * 1.3, grid)
                    row = _house(number, street, lat, lon + side * 1.3, grid)
                    houses[row.source_key] = row
    # Where the service's own buildings are: a house of the grid with the same address gives
    # way to them.
    landmarks = [(la, lo) for _, _, la, lo in STATIONS]
    landmarks += [(la, lo) for _, _, la, lo, _, _ in HOSPITALS]
    landmarks += [(la, lo) for _, _, la, lo in PLACES]
    for lat, lon in landmarks:
        number, street = address_at(lat, lon, grid).split(" ", 1)
        row = _house(number, street, lat, lon, grid)
        houses[row.source_key] = row
    return [*houses.values(), *lines]


def seed_gazetteer(service: DispatchService) -> GazetteerImport:
    """Load Riverton's gazetteer (safe to repeat: what is there already is left as it is)."""
    return gazetteer_import.load(service.sessions, SOURCE, gazetteer_rows())
