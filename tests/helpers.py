"""Helpers shared by the test modules, written once: import them, do not copy them.

- `new_call` / `new_calls`: calls created through the real service (tests on PostgreSQL).
- `call_view`, `assignment_view`, `unit_view`, `hospital_view`: the views the pure rules read, built in memory
  (the unit tier, `tests/unit/`). Every field the rule under test does not read gets a fixed,
  harmless default, so a test names only what matters to it.

This module imports nothing that needs a database, so the unit tier can use it too.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from dispatch_tui.rules.errors import Conflict
from dispatch_tui.rules.validation import CallIntake
from dispatch_tui.rules.views import AssignmentView, CallView, HospitalView, UnitView

if TYPE_CHECKING:
    from dispatch_tui.service.dispatch_service import DispatchService

# A fixed instant for views built in memory: tests pass their own "now" relative to it.
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)

# -- calls through the service ------------------------------------------------------------------


def new_call(svc: DispatchService, *, user: str = "alice", **fields: Any) -> str:
    """Create a call as `user` (a dispatcher of the demo data) and return its number.

    A P1 chest pain at Riverton Mall (a named place, so the call has coordinates) unless
    `fields` (any `CallIntake` field) say otherwise.
    """
    intake = {"nature": "Chest pain", "place": "Riverton Mall", "priority": 1, **fields}
    return svc.create_call(user, CallIntake(**intake)).number


def new_calls(svc: DispatchService, n: int, *, user: str = "alice", **fields: Any) -> list[str]:
    """`n` calls made by `new_call`, one after the other; their numbers, oldest first."""
    return [new_call(svc, user=user, **fields) for _ in range(n)]


# -- views built in memory, for the pure rules ---------------------------------------------------


def assignment_view(
    unit_code: str = "M1",
    unit_status: str = "EN_ROUTE",
    *,
    call_number: str = "C-7",
    capability: str = "ALS",
    notified_at: datetime = T0,
    en_route_at: datetime | None = None,
    on_scene_at: datetime | None = None,
    transporting_at: datetime | None = None,
    at_destination_at: datetime | None = None,
    cleared_at: datetime | None = None,
    cancelled_at: datetime | None = None,
    acknowledged: bool = True,
    alert_state: str | None = "sent",
    alert_at: datetime | None = None,
) -> AssignmentView:
    """An assignment as a view; its crew acknowledged it as it was notified, and its alert was
    sent, unless told otherwise."""
    return AssignmentView(
        id=1,
        call_number=call_number,
        unit_code=unit_code,
        unit_status=unit_status,
        capability=capability,
        paramedic=None,
        dispatcher="alice",
        hospital_code=None,
        notified_at=notified_at,
        en_route_at=en_route_at,
        on_scene_at=on_scene_at,
        transporting_at=transporting_at,
        at_destination_at=at_destination_at,
        cleared_at=cleared_at,
        cancelled_at=cancelled_at,
        acknowledged_at=notified_at if acknowledged else None,
        alert_state=alert_state,
        alert_at=alert_at or notified_at,
        alert_error="exit 1: gateway down" if alert_state == "failed" else None,
    )


def call_view(
    number: str = "C-7",
    status: str = "RECEIVED",
    priority: int = 1,
    *,
    received_at: datetime = T0,
    lat: float | None = None,
    lon: float | None = None,
    destination_code: str | None = None,
    assignments: tuple[AssignmentView, ...] = (),
    location_text: str = "1 Main Street",
) -> CallView:
    return CallView(
        id=1,
        number=number,
        status=status,
        priority=priority,
        determinant=None,
        nature="Chest pain",
        location_text=location_text,
        lat=lat,
        lon=lon,
        caller_name="",
        caller_phone="",
        notes="",
        received_at=received_at,
        first_dispatched_at=None,
        closed_at=None,
        cancelled_at=None,
        disposition=None,
        destination_code=destination_code,
        dispatched_by=None,
        assignments=assignments,
    )


def unit_view(
    code: str,
    capability: str = "ALS",
    status: str = "AVAILABLE",
    *,
    lat: float | None = None,
    lon: float | None = None,
    station_code: str | None = "S1",
    station_position: tuple[float, float] | None = None,
) -> UnitView:
    """A unit; `lat`/`lon` are its last reported position, `station_position` its home's."""
    return UnitView(
        id=1,
        code=code,
        capability=capability,
        status=status,
        status_since=T0,
        station_code=station_code,
        lat=lat,
        lon=lon,
        position_at=None if lat is None else T0,
        call_number=None,
        station_position=station_position,
    )


def hospital_view(code: str, lat: float, lon: float, status: str = "OPEN") -> HospitalView:
    return HospitalView(
        id=1,
        code=code,
        name=code.title(),
        status=status,
        status_since=T0,
        beds_available=None,
        capabilities=(),
        lat=lat,
        lon=lon,
    )


def race(*actions: Callable[[], object]) -> list[str]:
    """Run `actions` at once (a barrier lets them go together); each one's outcome: "done", or
    the message of the Conflict it met."""
    start = threading.Barrier(len(actions))
    results: list[str] = []

    def run(action: Callable[[], object]) -> None:
        start.wait()
        try:
            action()
            results.append("done")
        except Conflict as err:
            results.append(err.message)

    threads = [threading.Thread(target=run, args=(a,)) for a in actions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results
