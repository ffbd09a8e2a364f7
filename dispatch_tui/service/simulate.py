"""The drill simulator: plays a shift through the domain service.

New calls arrive at the demo places (Poisson arrivals, priorities in realistic proportions); crews
move every busy unit through its lifecycle with plausible durations (turnout, travel from the
distance, time on scene, transport to the nearest suitable open hospital, offload); and, with
auto-dispatch, a virtual dispatcher takes the recommended unit after a short call-processing time.
Every change goes through the service, so every desk and board follows it live, and a unit a
person dispatched is crewed by the simulator too.

`--seed` makes the drill reproducible: the same calls, places, priorities and durations in the
same order (wall-clock scheduling can still interleave steps differently under load).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from dispatch_tui.rules.errors import DispatchError
from dispatch_tui.rules.lifecycle import BUSY
from dispatch_tui.rules.norms import clock
from dispatch_tui.rules.recommend import destinations, estimate_seconds, haversine_km
from dispatch_tui.rules.validation import CallIntake
from dispatch_tui.rules.views import CallView, HospitalView, Snapshot, UnitView
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


@dataclass
class SimStats:
    calls: int = 0
    dispatches: int = 0
    steps: int = 0
    refused: int = 0  # a step another desk made first, or the state moved on: skipped, not forced
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
        self.due: dict[str, tuple[float, str]] = {}  # unit code -> (sim time due, expected status)
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
                continue
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
            if scheduled is None or scheduled[1] != stage:
                self.due[unit.code] = (
                    self.sim_elapsed + self._duration(stage, unit, call, hospitals),
                    stage,
                )
                continue
            if scheduled[0] <= self.sim_elapsed:
                self._advance(unit, call, stage, hospitals)

    def _duration(
        self, stage: str, unit: UnitView, call: CallView, hospitals: list[HospitalView]
    ) -> float:
        if stage == "EN_ROUTE+alerted":
            return self._between(5, 20)  # the crew acknowledges its alert
        if stage == "EN_ROUTE":
            return self._between(30, 90)  # turnout
        if stage == "EN_ROUTE+rolling":
            if unit.lat is None or call.lat is None or unit.lon is None or call.lon is None:
                return self._between(240, 600)
            travel = estimate_seconds(haversine_km((unit.lat, unit.lon), (call.lat, call.lon))) - 60
            return max(60.0, travel * self._between(0.8, 1.3))
        if stage.startswith("ON_SCENE"):
            return self._between(600, 1500)
        if stage.startswith("TRANSPORTING"):
            return self._between(420, 1200)
        return self._between(600, 1800)  # offload at the hospital

    def _advance(
        self, unit: UnitView, call: CallView, stage: str, hospitals: list[HospitalView]
    ) -> None:
        code = unit.code
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
                target = next((h for h in hospitals if h.code == call.destination_code), None)
                if target is not None:
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
            f" · crew steps {self.stats.steps} · skipped {self.stats.refused}"
        )


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
