"""The read side of the service: what the desk, the board and `show` display.

Reads take no locks and return frozen views. The board gets a `ReadService` on a read-only
connection; the dispatch service builds on this class. The gazetteer's reads (geocode,
completion, the nearest address) are `service.gazetteer.GazetteerReads`, mixed in here.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from dispatch_tui.db import views
from dispatch_tui.rules import lifecycle, norms, permissions, recommend, validation
from dispatch_tui.rules.enums import CallStatus
from dispatch_tui.rules.errors import AlreadyDone, Conflict, InvalidInput
from dispatch_tui.rules.recommend import Choices
from dispatch_tui.rules.views import (
    AddressFacts,
    AuditView,
    Box,
    CallRecord,
    CallView,
    CrewView,
    Found,
    HospitalView,
    Listing,
    Operator,
    PlaceView,
    PremiseView,
    Recommendation,
    Snapshot,
    StreetView,
    UnitView,
)
from dispatch_tui.service import kpis, lookups
from dispatch_tui.service.gazetteer import GazetteerReads
from dispatch_tui.service.transactions import reading

# `find`: how far back ended calls are searched, and how many calls it lists at most.
FIND_DAYS = 3.0
FIND_LIMIT = 50
# The most street lines a map reads for one view; past it the map says how many it left out.
STREETS_LIMIT = 50_000


class ReadService(GazetteerReads):
    def __init__(
        self,
        sessions: sessionmaker[Session],
        desk: str = "cli",
        *,
        stale_position_seconds: int = norms.STALE_POSITION_SECONDS,
    ) -> None:
        self.sessions = sessions
        self.desk = desk
        # A unit's position older than this is stale: recommendations say so, and its age.
        self.stale_position_seconds = stale_position_seconds

    def operator(self, username: str) -> Operator:
        with reading(self.sessions) as s:
            return views.operator(lookups.staff_row(s, username))

    def recommend(self, call_number: str, limit: int = 5) -> list[Recommendation]:
        validation.call_number(call_number)  # malformed input is refused before any read
        with reading(self.sessions) as s:
            call = views.call(s, lookups.call_id(s, call_number))
            if not CallStatus(call.status).is_open:
                raise Conflict(f"{call.number} is {lifecycle.label(call.status)}")
            return recommend.for_call(
                call, views.units(s), limit, views.db_now(s), self.stale_position_seconds
            )

    def choices(self, call_number: str, limit: int = 5) -> Choices:
        """All a dispatcher is offered for a call, from one read: the free units ranked, the
        units worth diverting from a less urgent call, and (when none is free) the units
        expected to clear first (`rules.recommend`)."""
        validation.call_number(call_number)
        with reading(self.sessions) as s, s.begin():
            _consistent(s)
            call = views.call(s, lookups.call_id(s, call_number))
            if not CallStatus(call.status).is_open:
                raise Conflict(f"{call.number} is {lifecycle.label(call.status)}")
            return recommend.choices(
                call,
                views.units(s),
                views.open_priorities(s),
                views.db_now(s),
                limit,
                self.stale_position_seconds,
            )

    def call(self, call_number: str) -> CallView:
        validation.call_number(call_number)
        with reading(self.sessions) as s:
            return views.call(s, lookups.call_id(s, call_number))

    def made(self, done: AlreadyDone) -> CallView | UnitView | HospitalView:
        """What a write carried out before under a request id made, as it is now."""
        with reading(self.sessions) as s:
            if done.call_id is not None:
                return views.call(s, done.call_id)
            if done.unit_id is not None:
                return views.unit(s, done.unit_id)
            assert done.hospital_id is not None, "a kept request names what it made"
            return views.hospitals(s, ids=[done.hospital_id])[0]

    def record(self, call_number: str) -> CallRecord:
        """A call's whole record: fields, units and times, and its timeline (one snapshot)."""
        validation.call_number(call_number)
        with reading(self.sessions) as s, s.begin():
            _consistent(s)
            return views.record(s, lookups.call_id(s, call_number))

    def address_facts(self, address: str) -> AddressFacts:
        """What intake shows of an address as it is typed: hazards, and calls in 12 months."""
        where = validation.text_field("address", address, validation.LOCATION_MAX)
        with reading(self.sessions) as s, s.begin():
            return views.address_facts(s, where)

    def premises(self, address: str) -> list[PremiseView]:
        """The hazard notes in force at `address` (as compared, typed any way)."""
        where = validation.text_field("address", address, validation.LOCATION_MAX, required=True)
        with reading(self.sessions) as s, s.begin():
            return views.premises(s, where)

    def crew(self, username: str, unit_code: str) -> CrewView:
        """What the crew terminal of `unit_code` shows (one snapshot): the unit, the record of
        the call it is on, the call lined up next, the hospitals. Only for the paramedic who
        crews that unit: anyone else is refused, saying whose terminal it is."""
        code = validation.unit_code(unit_code)
        with reading(self.sessions) as s, s.begin():
            _consistent(s)
            staff = lookups.staff_row(s, username)
            unit_id = lookups.unit_id(s, code)
            if not permissions.may(staff.role, "crew_terminal", own_unit=staff.unit_id == unit_id):
                crews = views.unit(s, staff.unit_id).code if staff.unit_id is not None else None
                raise permissions.crew_refusal(staff.username, staff.role, code, crews)
            unit = views.unit(s, unit_id)
            on = lookups.call_id(s, unit.call_number) if unit.call_number else None
            lined_up = lookups.call_id(s, unit.queued_call) if unit.queued_call else None
            return CrewView(
                db_now=views.db_now(s),
                unit=unit,
                record=views.record(s, on) if on is not None else None,
                next_call=views.call(s, lined_up) if lined_up is not None else None,
                hospitals=tuple(views.hospitals(s)),
            )

    def find(self, text: str, *, days: float = FIND_DAYS, limit: int = FIND_LIMIT) -> Found:
        """Calls by number, location, caller or phone (open ones, and ended ones received in
        the last `days`), and units by code. At most `limit` calls, with how many matched."""
        wanted = validation.text_field("search", text, 100, required=True)
        if not 0 < days <= 366:
            raise InvalidInput("search back between a day and a year (--days 1 to 366)")
        with reading(self.sessions) as s, s.begin():
            _consistent(s)
            since = views.db_now(s) - timedelta(days=days)
            calls, total, units = views.find(s, wanted, since=since, limit=max(1, limit))
            return Found(tuple(calls), tuple(units), total)

    def calls(self, *, open_only: bool = True, limit: int | None = None) -> list[CallView]:
        """Every open call (or every call), or with a `limit` the newest `limit` of them."""
        return list(self.listed_calls(open_only=open_only, limit=limit).rows)

    def listed_calls(
        self, *, open_only: bool = True, limit: int | None = None
    ) -> Listing[CallView]:
        """As `calls`, with how many there were in all: the count is read only when the limit
        was reached, in the same snapshot as the rows."""
        with reading(self.sessions) as s, s.begin():
            _consistent(s)
            rows = views.calls(s, open_only=open_only, limit=limit)
            cut = limit is not None and len(rows) >= limit
            total = views.count_calls(s, open_only=open_only) if cut else len(rows)
            return Listing(tuple(rows), total)

    def units(self) -> list[UnitView]:
        with reading(self.sessions) as s:
            return views.units(s)

    def hospitals(self) -> list[HospitalView]:
        with reading(self.sessions) as s:
            return views.hospitals(s)

    def places(self) -> list[PlaceView]:
        with reading(self.sessions) as s:
            return views.places(s)

    def streets(self, box: Box, limit: int = STREETS_LIMIT) -> Listing[StreetView]:
        """The gazetteer's street lines that cross `box` (a map's view), at most `limit`, with
        how many do in all."""
        if not (
            -90 <= box.min_lat <= box.max_lat <= 90 and -180 <= box.min_lon <= box.max_lon <= 180
        ):
            raise InvalidInput(
                "a map's view lies between latitudes -90 and 90, longitudes -180 and 180"
            )
        with reading(self.sessions) as s, s.begin():
            _consistent(s)
            rows, total = views.streets(s, box, limit=max(1, limit))
            return Listing(tuple(rows), total)

    def audit(self, call_number: str | None = None, limit: int = 200) -> list[AuditView]:
        return list(self.listed_audit(call_number, limit).rows)

    def listed_audit(self, call_number: str | None = None, limit: int = 200) -> Listing[AuditView]:
        """The newest `limit` audit entries (oldest first), with how many there are in all."""
        with reading(self.sessions) as s, s.begin():
            _consistent(s)
            call_id = lookups.call_id(s, call_number) if call_number is not None else None
            rows = views.audit(s, call_id=call_id, limit=limit)
            cut = len(rows) >= limit
            total = views.count_audit(s, call_id=call_id) if cut else len(rows)
            return Listing(tuple(rows), total)

    def snapshot(self) -> Snapshot:
        """Everything a desk shows, in one read transaction (open calls, all units, hospitals)."""
        with reading(self.sessions) as s, s.begin():
            _consistent(s)
            return Snapshot(
                full=True,
                db_now=views.db_now(s),
                calls=tuple(views.calls(s)),
                units=tuple(views.units(s)),
                hospitals=tuple(views.hospitals(s)),
                places=tuple(views.places(s)),
                standby_age=views.standby_age(s),
            )

    def changed(
        self,
        *,
        call_ids: Iterable[int] = (),
        unit_ids: Iterable[int] = (),
        hospital_ids: Iterable[int] = (),
    ) -> Snapshot:
        """Only the named rows, fresh: the cost follows the change, not the size of the history."""
        calls, units, hospitals = (
            sorted(set(call_ids)),
            sorted(set(unit_ids)),
            sorted(set(hospital_ids)),
        )
        with reading(self.sessions) as s, s.begin():
            _consistent(s)
            return Snapshot(
                full=False,
                db_now=views.db_now(s),
                calls=tuple(views.calls(s, ids=calls)) if calls else (),
                units=tuple(views.units(s, ids=units)) if units else (),
                hospitals=tuple(views.hospitals(s, ids=hospitals)) if hospitals else (),
            )

    def kpis(
        self, windows: dict[str, tuple[datetime, datetime]], *, by: str | None = None
    ) -> dict[str, dict[str, list[norms.Kpi]]]:
        """KPIs per named window (e.g. last hour, shift, 24 h), each {group: [Kpi per norm]}."""
        with reading(self.sessions) as s, s.begin():
            return kpis.kpis_windows(s, windows, by=by)

    def export(self, since: datetime, until: datetime) -> list[dict[str, Any]]:
        with reading(self.sessions) as s, s.begin():
            return kpis.export_rows(s, since, until)

    def may_relay(self) -> bool:
        """Whether this login may read the relay's channel (`db.listener`, migration 0015)."""
        with reading(self.sessions) as s:
            return views.relay_channel(s) is not None

    def now(self) -> datetime:
        with reading(self.sessions) as s:
            value: datetime = views.db_now(s)
            return value


def _consistent(s: Session) -> None:
    """One snapshot for the whole read, taken at `db_now`: a desk can order snapshots by it."""
    s.connection(
        execution_options={"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
    )
