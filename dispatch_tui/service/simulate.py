"""The drill simulator: plays a shift through the domain service.

New calls arrive at the demo places (Poisson arrivals, priorities in realistic proportions); crews
move every busy unit through its lifecycle with plausible durations (turnout, travel from the
distance, time on scene, transport to the nearest suitable open hospital, offload); and, with
auto-dispatch, a virtual dispatcher takes the recommended unit after a short call-processing time.
Every change goes through the service, so every desk and board follows it live, and a unit a
person dispatched is crewed by the simulator too.

Units move as an AVL feed would move them: while a unit drives to its call, takes its patient to
the hospital, or drives back to its station after clearing, it reports a position a step further
along its way every few seconds (`SimOptions.position_seconds`), through the same write as `unit
locate` (the position's columns alone), so its ETAs shrink and its position stays fresh on every
desk. A drive is a straight line walked by the fraction of its planned time gone (`Leg`); it ends
at the call, the hospital or the station. A unit that is not moving reports nothing: parked, its
position ages, and a desk says so once it is stale.

`--seed` makes the drill reproducible: the same calls, places, priorities and durations in the
same order (wall-clock scheduling can still interleave steps differently under load).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from dispatch_tui.rules.enums import UnitStatus
from dispatch_tui.rules.errors import DispatchError
from dispatch_tui.rules.lifecycle import BUSY
from dispatch_tui.rules.norms import clock
from dispatch_tui.rules.recommend import (
    TURNOUT_SECONDS,
    destinations,
    estimate_seconds,
    haversine_km,
)
from dispatch_tui.rules.validation import CallIntake
from dispatch_tui.rules.views import AssignmentView, CallView, HospitalView, Snapshot, UnitView
from dispatch_tui.service.dispatch_service import DispatchService

log = logging.getLogger(__name__)

# Share of calls by priority at a typical EMS service (most calls are not life-threatening).
PRIORITY_WEIGHTS = {1: 0.12, 2: 0.30, 3: 0.38, 4: 0.20}
NATURES = {
    1: [
        ("Cardiac arrest", "09-E-1"),
        ("Unconscious, not breathing", "31-E-1"),
        ("Major trauma", "30-D-1"),
    ],
    2: [("Chest pain", "10-C-1"), ("Breathing problems", "06-C-1"), ("Stroke symptoms", "28-C-1")],
    3: [
        ("Fall, injured", "17-B-1"),
        ("Traffic collision, minor", "29-B-1"),
        ("Sick person", "26-B-1"),
    ],
    4: [("Fall, no injury", "17-A-1"), ("Back pain", "05-A-1"), ("Minor illness", "26-A-1")],
}


@dataclass(frozen=True, slots=True)
class SimOptions:
    calls_per_hour: float = 12.0
    speed: float = 1.0  # simulated seconds per real second
    duration: float | None = None  # real seconds; None: until stopped
    auto_dispatch: bool = False
    seed: int | None = None
    tick: float = 0.25  # real seconds between looks at the world
    # Real seconds between two positions of a moving unit (an AVL feed's rate): one small write
    # per moving unit this often, whatever the speed.
    position_seconds: float = 5.0


@dataclass
class SimStats:
    calls: int = 0
    dispatches: int = 0
    steps: int = 0
    refused: int = 0  # a step another desk made first, or the state moved on: skipped, not forced
    positions: int = 0  # positions reported by moving units
    started: float = field(default_factory=time.monotonic)


class Simulator:
    def __init__(self, service: DispatchService, operator: str, options: SimOptions) -> None:
        self.service = service
        self.operator = operator
        self.options = options
        # Two seeded streams: the calls never depend on what the crews happen to be doing, so the
        # same seed gives the same calls even when people dispatch alongside the drill.
        self.rng = random.Random(options.seed)  # noqa: S311 - a drill, not cryptography
        self.crew_rng = random.Random(None if options.seed is None else options.seed + 1)  # noqa: S311
        self.stats = SimStats()
        self.sim_elapsed = 0.0
        self.next_call_at = self._interarrival()
        # unit code -> (sim time due, the stage it ends, the call it is on)
        self.due: dict[str, tuple[float, str, str]] = {}
        self.legs: dict[str, Leg] = {}  # unit code -> the drive it is on
        self.busy: set[str] = set()  # the units busy at the last look (those that clear go home)
        self.reported: dict[str, float] = {}  # unit code -> sim time of its last position
        self.dispatch_due: list[tuple[float, str]] = []  # (sim time, call number)
        self.places = service.places()

    # -- randomness (all from one seeded generator) ----------------------------------------

    def _interarrival(self) -> float:
        return (
            self.rng.expovariate(self.options.calls_per_hour / 3600.0)
            if self.options.calls_per_hour > 0
            else float("inf")
        )

    def _between(self, low: float, high: float) -> float:
        return self.crew_rng.uniform(low, high)

    # -- one look at the world ----------------------------------------------------------------

    def step(self, sim_seconds: float) -> None:
        """Advance the simulated clock by `sim_seconds` and do whatever fell due."""
        self.sim_elapsed += sim_seconds
        while self.sim_elapsed >= self.next_call_at:
            self._new_call()
            self.next_call_at += self._interarrival()
        snapshot = self.service.snapshot()
        self._dispatch_due(snapshot)
        self._crews(snapshot)

    def _new_call(self) -> None:
        if not self.places:
            return
        priority = self.rng.choices(
            list(PRIORITY_WEIGHTS), weights=list(PRIORITY_WEIGHTS.values())
        )[0]
        nature, determinant = self.rng.choice(NATURES[priority])
        place = self.rng.choice(self.places)
        try:
            call = self.service.create_call(
                self.operator,
                CallIntake(
                    nature=nature,
                    place=place.name,
                    priority=priority,
                    determinant=determinant,
                    caller_name="Drill caller",
                    notes="simulated call",
                ),
            )
        except DispatchError as err:
            log.warning("simulated call refused: %s", err)
            self.stats.refused += 1
            return
        self.stats.calls += 1
        if self.options.auto_dispatch:
            # A dispatcher needs a moment to take the call and choose (call processing).
            self.dispatch_due.append((self.sim_elapsed + self.rng.uniform(20, 75), call.number))

    def _dispatch_due(self, snapshot: Snapshot) -> None:
        pending = {c.number for c in snapshot.calls if c.status == "RECEIVED"}
        later: list[tuple[float, str]] = []
        for due, number in self.dispatch_due:
            if number not in pending:
                continue  # someone else dispatched or cancelled it
            if due > self.sim_elapsed:
                later.append((due, number))
                continue
            try:
                recs = self.service.recommend(number, limit=1)
                if not recs:
                    later.append((self.sim_elapsed + 30, number))  # no unit free: look again soon
                    continue
                self.service.dispatch(self.operator, number, [recs[0].unit.code])
                self.stats.dispatches += 1
            except DispatchError as err:
                log.info("virtual dispatcher: %s", err)
                self.stats.refused += 1
                later.append((self.sim_elapsed + 5, number))
        self.dispatch_due = later

    def _crews(self, snapshot: Snapshot) -> None:
        calls = {c.number: c for c in snapshot.calls}
        hospitals = [h for h in snapshot.hospitals if h.status == "OPEN"]
        for unit in snapshot.units:
            if unit.status not in BUSY:
                self.due.pop(unit.code, None)
                self._home(unit, was_busy=unit.code in self.busy)
                self.busy.discard(unit.code)
                continue
            self.busy.add(unit.code)
            call = calls.get(unit.call_number or "")
            if call is None:
                continue
            assignment = next(
                (a for a in call.assignments if a.active and a.unit_code == unit.code), None
            )
            if assignment is None:
                continue
            stage = unit.status + (
                "+rolling"
                if assignment.en_route_at
                else ("" if assignment.acknowledged_at else "+alerted")
            )
            scheduled = self.due.get(unit.code)
            # A new stage, or the same on another call (diverted): its time starts now.
            if scheduled is None or scheduled[1:] != (stage, call.number):
                took = self._duration(stage, unit, call, hospitals)
                self.due[unit.code] = (self.sim_elapsed + took, stage, call.number)
                self._set_out(unit, call, assignment, stage, took, snapshot.hospitals)
            elif scheduled[0] <= self.sim_elapsed:
                self._advance(unit, call, stage, hospitals, snapshot.hospitals)
                continue
            self._drive(unit)

    # -- moving: a unit on its way reports where it is ----------------------------------------

    @property
    def report_every(self) -> float:
        """Simulated seconds between two positions of a moving unit."""
        return self.options.position_seconds * self.options.speed

    def _set_out(
        self,
        unit: UnitView,
        call: CallView,
        assignment: AssignmentView,
        stage: str,
        took: float,
        hospitals: Sequence[HospitalView],
    ) -> None:
        """The drive a new stage is, if it is one: to the call once the crew rolls, to the
        hospital when transporting. Any other stage stands still where the unit is."""
        self.legs.pop(unit.code, None)
        start, end = _where(unit), None
        if stage == "EN_ROUTE+rolling":
            start = start or unit.station_position
            end = (call.lat, call.lon) if call.lat is not None and call.lon is not None else None
        elif stage.startswith("TRANSPORTING"):
            going = assignment.hospital_code or call.destination_code
            hospital = next((h for h in hospitals if h.code == going), None)
            end = (hospital.lat, hospital.lon) if hospital is not None else None
        if start is not None and end is not None:
            self.legs[unit.code] = Leg(stage, start, end, self.sim_elapsed, self.sim_elapsed + took)

    def _home(self, unit: UnitView, *, was_busy: bool) -> None:
        """A unit that has just cleared drives back to its station (when it is away from it),
        reporting as it goes; one out of service, or sent out again, stops driving home."""
        code = unit.code
        if unit.status != UnitStatus.AVAILABLE:
            self.legs.pop(code, None)
            return
        leg = self.legs.get(code)
        if leg is None or leg.stage != HOME:
            self.legs.pop(code, None)
            start, home = _where(unit), unit.station_position
            if not was_busy or start is None or home is None:
                return
            distance = haversine_km(start, home)
            if distance < PARKED_KM:
                return  # cleared at its station: parked already
            # No lights on the way back: slower than to a call.
            took = (estimate_seconds(distance) - TURNOUT_SECONDS) * self._between(1.1, 1.4)
            self.legs[code] = Leg(HOME, start, home, self.sim_elapsed, self.sim_elapsed + took)
        self._drive(unit)

    def _drive(self, unit: UnitView) -> None:
        """Report the unit's position a step further along its drive, when one is due: every
        `report_every` simulated seconds, and once more when a drive home ends (parked there;
        a drive to a call or a hospital ends with the arrival, `_advance`)."""
        code = unit.code
        leg = self.legs.get(code)
        if leg is None:
            return
        parked = leg.stage == HOME and self.sim_elapsed >= leg.ends  # home: its last report
        last = self.reported.get(code)
        if not parked and last is not None and self.sim_elapsed - last < self.report_every:
            return
        self._report(code, leg.at(self.sim_elapsed))
        if parked:
            self.legs.pop(code, None)

    def _report(self, code: str, position: tuple[float, float]) -> None:
        """One position, written as `unit locate` writes it (its columns only, audited), so
        every desk hears of it."""
        try:
            self.service.locate_unit(self.operator, code, *position)
        except DispatchError as err:
            log.info("position of %s: %s", code, err)
            return
        self.reported[code] = self.sim_elapsed
        self.stats.positions += 1

    def _duration(
        self, stage: str, unit: UnitView, call: CallView, hospitals: list[HospitalView]
    ) -> float:
        if stage == "EN_ROUTE+alerted":
            return self._between(5, 20)  # the crew acknowledges its alert
        if stage == "EN_ROUTE":
            return self._between(30, 90)  # turnout
        if stage == "EN_ROUTE+rolling":
            start = _where(unit) or unit.station_position
            if start is None or call.lat is None or call.lon is None:
                return self._between(240, 600)
            travel = estimate_seconds(haversine_km(start, (call.lat, call.lon))) - TURNOUT_SECONDS
            return max(60.0, travel * self._between(0.8, 1.3))
        if stage.startswith("ON_SCENE"):
            return self._between(600, 1500)
        if stage.startswith("TRANSPORTING"):
            return self._between(420, 1200)
        return self._between(600, 1800)  # offload at the hospital

    def _advance(
        self,
        unit: UnitView,
        call: CallView,
        stage: str,
        hospitals: list[HospitalView],
        every_hospital: Sequence[HospitalView],
    ) -> None:
        """The step that ends `stage`, through the service. `hospitals`: the open ones (where a
        transport goes); `every_hospital`: where one may have gone (on diversion, overridden)."""
        code = unit.code
        leg = self.legs.pop(code, None)  # a drive ends with its arrival, at its end
        try:
            if stage == "EN_ROUTE+alerted":
                self.service.acknowledge(self.operator, code)
            elif stage == "EN_ROUTE":
                self.service.unit_status(self.operator, code, "EN_ROUTE")
            elif stage == "EN_ROUTE+rolling":
                self.service.unit_status(self.operator, code, "ON_SCENE")
                if call.lat is not None and call.lon is not None:
                    self.service.locate_unit(self.operator, code, call.lat, call.lon)
            elif stage.startswith("ON_SCENE"):
                ranked = destinations(call, hospitals)
                if self.crew_rng.random() < 0.72 and ranked:
                    best = ranked[0]
                    self.service.unit_status(
                        self.operator,
                        code,
                        "TRANSPORTING",
                        hospital=best.hospital.code,
                        override_diversion=best.on_diversion,  # no open hospital is left
                    )
                else:
                    self.service.unit_status(
                        self.operator, code, "AVAILABLE"
                    )  # treated, not transported
            elif stage.startswith("TRANSPORTING"):
                self.service.unit_status(self.operator, code, "AT_HOSPITAL")
                target = next((h for h in every_hospital if h.code == call.destination_code), None)
                if leg is not None:
                    self.service.locate_unit(self.operator, code, *leg.end)
                elif target is not None:
                    self.service.locate_unit(self.operator, code, target.lat, target.lon)
            else:
                self.service.unit_status(self.operator, code, "AVAILABLE")
            self.stats.steps += 1
        except DispatchError as err:
            log.info("crew of %s: %s", code, err)
            self.stats.refused += 1
        self.due.pop(code, None)

    def progress(self, snapshot: Snapshot | None = None) -> str:
        snap = snapshot or self.service.snapshot()
        pending = sum(1 for c in snap.calls if c.status == "RECEIVED")
        active = sum(1 for c in snap.calls if c.status != "RECEIVED")
        free = sum(1 for u in snap.units if u.status == "AVAILABLE")
        return (
            f"sim {clock(self.sim_elapsed)} · calls {self.stats.calls} · pending {pending} · active {active}"
            f" · units free {free}/{len(snap.units)} · dispatches {self.stats.dispatches}"
            f" · crew steps {self.stats.steps} · positions {self.stats.positions}"
            f" · skipped {self.stats.refused}"
        )


# A drive back to the station; a unit cleared this near its station is parked there already.
HOME = "HOME"
PARKED_KM = 0.05


@dataclass(frozen=True, slots=True)
class Leg:
    """One drive: from `start` to `end` between simulated times `begins` and `ends`, for the
    stage it belongs to (or HOME). Straight, at an even pace: where a unit is is the fraction
    of the planned time gone, walked along the line."""

    stage: str
    start: tuple[float, float]
    end: tuple[float, float]
    begins: float
    ends: float

    def at(self, t: float) -> tuple[float, float]:
        """Where the unit is at simulated time `t` (at the start before, at the end after)."""
        span = self.ends - self.begins
        done = 1.0 if span <= 0 else min(1.0, max(0.0, (t - self.begins) / span))
        if done >= 1.0:
            return self.end  # exactly there: arrived, not a float's width short of it
        return (
            self.start[0] + (self.end[0] - self.start[0]) * done,
            self.start[1] + (self.end[1] - self.start[1]) * done,
        )


def _where(unit: UnitView) -> tuple[float, float] | None:
    """The unit's reported position, if it has one."""
    return (unit.lat, unit.lon) if unit.lat is not None and unit.lon is not None else None


def run(
    simulator: Simulator,
    *,
    report: Callable[[str], None],
    stop: threading.Event | None = None,
    report_every: float = 5.0,
) -> SimStats:
    """Play until the duration is over or `stop` is set; report a progress line now and then."""
    options = simulator.options
    stop = stop or threading.Event()
    started = last = last_report = time.monotonic()
    while not stop.is_set():
        now = time.monotonic()
        if options.duration is not None and now - started >= options.duration:
            break
        simulator.step((now - last) * options.speed)
        last = now
        if now - last_report >= report_every:
            report(simulator.progress())
            last_report = now
        stop.wait(options.tick)
    report("stopped · " + simulator.progress())
    return simulator.stats
