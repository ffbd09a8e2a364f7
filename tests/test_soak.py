"""A bounded soak: sixteen desks doing everything at once, then every invariant checked in SQL.

Sixteen worker threads each run random operations through the service for a bounded time:
taking calls, dispatching (a first unit, or more with --add), every unit status change, position
fixes, cancelling a unit or a whole call, closing calls, hospital status and beds, diverting
units between calls, lining up a busy unit's next call (and taking it back), re-opening calls. Each operation
is chosen from the current state as the service reports it (so most of them are plausible and
many really change something), with a share of stale or wrong ones mixed in on purpose. Every
worker has its own seeded random generator, so a failing run can be replayed with the same seed
(though the threads' interleaving will differ).

The state the workers choose from is what a wall of live desks would show: full reads through
the service (`snapshot()`, the desk's own read), refreshed every REFRESH_SECONDS, combined with
the rows each successful action returns, as a desk refetches the rows a notification names (see
`Board`).

Every op runs under a request id, and now and then is sent again under it, as a desk or a
script does after a lost answer: an op that was done must then answer `AlreadyDone` (done
before, not repeated), never act again or be refused.

The domain errors a dispatcher can meet (Conflict, InvalidInput, NotFound, Forbidden) are
expected and counted; anything else (a raw database error, Unavailable, a bug) fails the test.
Afterwards the whole database is checked against the invariants shared with the race and
simulator tests (`invariants.py`) and must show none broken, and the soak must have done real work
(enough successful dispatches, some of every kind of op).

Settings (environment):

* `DISPATCH_SOAK_SECONDS` — how long the workers run; default 8 (CI). The long version is e.g.
  `DISPATCH_SOAK_SECONDS=60 pytest tests/test_soak.py`. A machine too slow or too busy to do
  MIN_DISPATCHES dispatches and some of every kind of op in that time keeps going until it has,
  for at most as long again (then the test fails and says how far it got).
* `DISPATCH_SOAK_SEED` — the base seed (worker i uses base + i); default fixed, so runs vary only
  by thread timing.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import random
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import pytest
from sqlalchemy import Engine, text

from dispatch_tui.rules.commands import Once
from dispatch_tui.rules.errors import AlreadyDone, Conflict, Forbidden, InvalidInput, NotFound
from dispatch_tui.rules.validation import CallIntake
from dispatch_tui.rules.views import CallView, UnitView
from dispatch_tui.service.dispatch_service import DispatchService
from tests.invariants import violations

pytestmark = pytest.mark.slow

SOAK_SECONDS = float(os.environ.get("DISPATCH_SOAK_SECONDS", "8"))
BASE_SEED = int(os.environ.get("DISPATCH_SOAK_SEED", "20261124"))
WORKERS = 16
# Past the soak's end, one operation may still wait out the service's 5 s lock timeout; a worker
# still running after this is hung.
JOIN_GRACE = 30.0
MIN_DISPATCHES = 50
# How often a desk sends an op again under its request id, as after a lost answer.
RETRY_SHARE = 0.15
# A cap on open calls, so the desks' reads stay small however long the soak runs.
MAX_OPEN_CALLS = 24
REFRESH_SECONDS = 0.5
SECTORS = 4
OWN_SECTOR = 0.75  # how often a desk picks from its own sector when it has something there
# Eight more units than the demo's twelve (M7-M10, B7-B10): still fewer than the desks, so they
# contend, but enough that units cycling back to available keep the dispatches coming.
EXTRA_UNITS = [(f"M{i}", "ALS") for i in range(7, 11)] + [(f"B{i}", "BLS") for i in range(7, 11)]

Row = TypeVar("Row", CallView, UnitView)
Action = Callable[[Once], Any]  # an op, to run under a request id
ENDED = ("CLOSED", "CANCELLED")


@dataclass(frozen=True, slots=True)
class State:
    calls: list[CallView]  # open ones
    units: list[UnitView]


# Each must succeed at least once for the soak to count.
KINDS = (
    "create_call",
    "dispatch",
    "dispatch_add",
    "unit_en_route",
    "unit_on_scene",
    "unit_transporting",
    "unit_at_hospital",
    "unit_available",
    "unit_out_of_service",
    "locate",
    "cancel_unit",
    "cancel_call",
    "close_call",
    "hospital_status",
    "divert",
    "queue",
    "reopen",
)

EXPECTED = (Conflict, InvalidInput, NotFound, Forbidden)
TRANSACTIONS_LOG = "dispatch_tui.service.transactions"

DISPATCHERS = ("alice", "bob")
SUPERVISOR = "grace"
CREWS = {"M1": "carol", "M3": "dave", "M4": "erin", "M5": "frank"}
HOSPITALS = ("MERCY", "STJ", "CHILD", "EAST", "UNIV")
PLACES = ("Riverton Mall", "Central Station", "Lincoln High School", "Riverside Park")
NATURES = ("Chest pain", "Fall", "Breathing problems", "Stroke symptoms", "Traffic collision")

# The step a crew would report next, by the unit's current status.
NEXT_STEP = {
    "EN_ROUTE": ("EN_ROUTE", "ON_SCENE", "ON_SCENE", "ON_SCENE"),
    "ON_SCENE": ("TRANSPORTING", "AVAILABLE", "AVAILABLE"),
    "TRANSPORTING": ("AT_HOSPITAL",),
    "AT_HOSPITAL": ("AVAILABLE",),
}
UNIT_STATUSES = (
    "EN_ROUTE",
    "ON_SCENE",
    "TRANSPORTING",
    "AT_HOSPITAL",
    "AVAILABLE",
    "OUT_OF_SERVICE",
)


# -- the workers --------------------------------------------------------------------------------


class Tally:
    """Every desk's outcomes, and when to stop: after SOAK_SECONDS, or, if the soak has not yet
    done MIN_DISPATCHES dispatches and some of every kind of op (a slow or busy machine), as soon
    as it has, but never after twice SOAK_SECONDS."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._outcomes: Counter[tuple[str, str]] = Counter()
        self.started = time.monotonic()
        self._soft_end = self.started + SOAK_SECONDS
        self._hard_end = self.started + 2 * SOAK_SECONDS

    def add(self, op: str, result: str) -> None:
        with self._lock:
            self._outcomes[(op, result)] += 1

    def outcomes(self) -> Counter[tuple[str, str]]:
        with self._lock:
            return Counter(self._outcomes)

    def ok(self) -> Counter[str]:
        return Counter({op: n for (op, result), n in self.outcomes().items() if result == "ok"})

    def dispatched(self) -> int:
        ok = self.ok()
        return ok["dispatch"] + ok["dispatch_add"]

    def missing(self) -> list[str]:
        ok = self.ok()
        return [kind for kind in KINDS if ok[kind] == 0]

    def running(self) -> bool:
        now = time.monotonic()
        if now < self._soft_end:
            return True
        return now < self._hard_end and (self.dispatched() < MIN_DISPATCHES or bool(self.missing()))


class Board:
    """What the desks see: the state read through the service, shared by the workers.

    Like a desk kept live, it combines full reads (`snapshot()`, taken again by whichever worker
    finds it older than REFRESH_SECONDS) with the rows each successful action returns (a call
    with its assignments, or a unit), which stand in for the desk's refetch after a change
    notification. Full reads alone cannot keep up: with sixteen threads on two busy cores one
    takes a quarter to half a second, and the desks would spend the soak on refusals for things
    already done. A row newer than a snapshot is kept over it, as the desk does. What remains
    stale (say, a call's status after one of its units moved) is what a real desk sees stale for
    a moment too, and the Conflicts counted are the service saying so.
    """

    def __init__(self, svc: DispatchService) -> None:
        self._svc = svc
        self._lock = threading.Lock()  # guards the two maps
        self._refreshing = threading.Lock()  # one full read at a time
        self._calls: dict[int, tuple[float, CallView]] = {}
        self._units: dict[int, tuple[float, UnitView]] = {}
        self._read_at = 0.0
        self.refresh()

    def refresh(self) -> None:
        started = time.monotonic()
        snapshot = self._svc.snapshot()
        with self._lock:
            # Rows learnt after this read began may be newer than it: they stay.
            calls = {c.id: (started, c) for c in snapshot.calls}
            units = {u.id: (started, u) for u in snapshot.units}
            calls.update((k, v) for k, v in self._calls.items() if v[0] > started)
            units.update((k, v) for k, v in self._units.items() if v[0] > started)
            self._calls, self._units = calls, units
            self._read_at = time.monotonic()

    def current(self) -> tuple[list[CallView], list[UnitView]]:
        """(open calls, units) as last seen."""
        if time.monotonic() - self._read_at > REFRESH_SECONDS and self._refreshing.acquire(
            blocking=False
        ):
            try:
                self.refresh()
            finally:
                self._refreshing.release()
        with self._lock:
            calls = [c for _, c in self._calls.values() if c.status not in ENDED]
            return calls, [u for _, u in self._units.values()]

    def saw(self, result: object) -> None:
        """Take in a row an action returned."""
        now = time.monotonic()
        with self._lock:
            if isinstance(result, UnitView):
                self._units[result.id] = (now, result)
            elif isinstance(result, CallView):
                self._calls[result.id] = (now, result)
                units = {u.code: u for _, u in self._units.values()}
                for a in result.assignments:
                    unit = units.get(a.unit_code)
                    if unit is None:
                        continue
                    if a.active:
                        unit = replace(unit, status=a.unit_status, call_number=result.number)
                    elif unit.call_number == result.number:
                        unit = replace(unit, status="AVAILABLE", call_number=None)
                    else:
                        continue  # an old assignment; the unit has moved on
                    self._units[unit.id] = (now, unit)


class Desk:
    """One worker: a random operator at a desk, acting on what the service last showed it.

    Each desk mostly works its own sector (a quarter of the calls and units, by id) and now and
    then reaches into the others, as dispatchers sharing a centre do: four desks per sector
    still fight over the same rows, yet the sixteen do not all pile onto the same few, which
    would leave the soak little but refusals.
    """

    def __init__(self, svc: DispatchService, board: Board, seed: int, sector: int) -> None:
        self.svc = svc
        self.board = board
        self.rng = random.Random(seed)
        self.seed = seed
        self.sector = sector
        self.unexpected: list[str] = []
        self.ended: list[str] = []  # calls this desk closed or cancelled, the newest last

    def run(self, tally: Tally) -> None:
        for n in itertools.count():
            if not tally.running():
                return
            op, action = self.choose(State(*self.board.current()))
            # Every op under a request id of its own, as a desk sends it.
            rid = f"soak-{self.seed}-{n}"
            once = Once(rid, hashlib.sha256(rid.encode()).hexdigest())
            done = False
            try:
                result = action(once)
            except EXPECTED as err:
                tally.add(op, type(err).__name__)
            except Exception:  # what the test is looking for: kept, reported at the end
                self.unexpected.append(f"seed {self.seed}, {op}:\n{traceback.format_exc()}")
            else:
                done = True
                tally.add(op, "ok")
                self.board.saw(result)
                if isinstance(result, CallView) and result.status in ENDED:
                    self.ended = [*self.ended[-19:], result.number]
            if self.rng.random() < RETRY_SHARE:
                self.retry(tally, op, action, once, done)

    def retry(self, tally: Tally, op: str, action: Action, once: Once, done: bool) -> None:
        """Send the op again under its id, as after a lost answer (the state may have moved on
        meanwhile): a write that was done must answer AlreadyDone, never act or refuse."""
        try:
            action(once)
        except AlreadyDone:
            tally.add("retry", "AlreadyDone")
            if not done:
                self.unexpected.append(f"seed {self.seed}, {op} {once.id}: refused, then done")
        except EXPECTED as err:
            tally.add("retry", type(err).__name__)
            if done:
                self.unexpected.append(f"seed {self.seed}, {op} {once.id}: done, retry {err!r}")
        except Exception:
            self.unexpected.append(f"seed {self.seed}, retry {op}:\n{traceback.format_exc()}")
        else:
            tally.add("retry", "ok")
            if done:
                self.unexpected.append(f"seed {self.seed}, {op} {once.id}: done twice")

    def pick(self, rows: Sequence[Row]) -> Row:
        mine = [r for r in rows if r.id % SECTORS == self.sector]
        return self.rng.choice(mine if mine and self.rng.random() < OWN_SECTOR else rows)

    def dispatcher(self) -> str:
        return self.rng.choice(DISPATCHERS)

    # Each chooser returns the op's name (for the counts) and the call to make.
    def choose(self, state: State) -> tuple[str, Action]:
        # Weighted towards the dispatch cycle (take a call, send a unit, it arrives, it clears):
        # on this 2-core machine the service does only some 60 actions a second in all.
        weights = {
            self.create: 1 if len(state.calls) >= MAX_OPEN_CALLS else 10,
            self.dispatch: 32,
            self.unit_status: 40,
            self.locate: 4,
            self.cancel_unit: 5,
            self.cancel_call: 3,
            self.close_call: 6,
            self.hospital: 3,
            self.divert: 4,
            self.queue: 4,
            self.reopen: 2,
        }
        chooser = self.rng.choices(list(weights), weights=list(weights.values()))[0]
        return chooser(state)

    def create(self, state: State) -> tuple[str, Action]:
        intake = CallIntake(
            nature=self.rng.choice(NATURES),
            place=self.rng.choice(PLACES),
            priority=self.rng.randint(1, 4),
        )
        who = "carol" if self.rng.random() < 0.05 else self.dispatcher()  # a paramedic may not
        return "create_call", lambda once: self.svc.create_call(who, intake, once=once)

    def dispatch(self, state: State) -> tuple[str, Action]:
        if not state.calls:
            return self.create(state)
        pending = [c for c in state.calls if c.status == "RECEIVED"]
        call = self.pick(pending if pending and self.rng.random() < 0.8 else state.calls)
        # Mostly units shown available, sometimes any unit (a stale board): a Conflict then.
        free = [u for u in state.units if u.status == "AVAILABLE"]
        pool = free if free and self.rng.random() < 0.9 else list(state.units)
        first = self.pick(pool)
        chosen = [first.code]
        if self.rng.random() < 0.2 and len(pool) > 1:
            chosen.append(self.rng.choice([u.code for u in pool if u is not first]))
        add = bool(call.active_units) or self.rng.random() < 0.1
        kwargs: dict[str, Any] = {"add": add}
        if self.rng.random() < 0.15:
            kwargs["hospital"] = self.rng.choice(HOSPITALS)
            kwargs["override_diversion"] = self.rng.random() < 0.5
        if len(chosen) == 1 and first.code in CREWS and self.rng.random() < 0.2:
            kwargs["paramedic"] = CREWS[first.code]
        who, number = self.dispatcher(), call.number
        name = "dispatch_add" if add else "dispatch"
        return name, lambda once: self.svc.dispatch(who, number, chosen, once=once, **kwargs)

    def unit_status(self, state: State) -> tuple[str, Action]:
        busy = [u for u in state.units if u.status not in ("AVAILABLE", "OUT_OF_SERVICE")]
        out = [u for u in state.units if u.status == "OUT_OF_SERVICE"]
        roll = self.rng.random()
        unit: UnitView
        if busy and roll < 0.85:
            # Mostly a crew on a call reporting its next step (or, now and then, a wrong one).
            unit = self.pick(busy)
            if self.rng.random() < 0.9:
                target = self.rng.choice(NEXT_STEP[unit.status])
            else:
                target = self.rng.choice(UNIT_STATUSES)
        elif out and roll < 0.93:
            unit, target = self.pick(out), "AVAILABLE"  # back in service
        else:
            unit, target = self.pick(state.units), self.rng.choice(UNIT_STATUSES)
        # Mostly a dispatcher; sometimes the unit's own crew; rarely another unit's crew.
        who = self.dispatcher()
        roll = self.rng.random()
        if roll < 0.15 and unit.code in CREWS:
            who = CREWS[unit.code]
        elif roll < 0.18:
            who = self.rng.choice(list(CREWS.values()))
        kwargs: dict[str, Any] = {}
        if target == "TRANSPORTING" and self.rng.random() < 0.9:
            kwargs["hospital"] = self.rng.choice(HOSPITALS)
            kwargs["override_diversion"] = self.rng.random() < 0.5
        code = unit.code
        return f"unit_{target.lower()}", lambda once: self.svc.unit_status(
            who, code, target, once=once, **kwargs
        )

    def locate(self, state: State) -> tuple[str, Action]:
        code = self.pick(state.units).code
        lat = 40.0 + self.rng.uniform(-0.05, 0.05)
        lon = -83.0 + self.rng.uniform(-0.05, 0.05)
        if self.rng.random() < 0.05:
            lat = 123.0  # not a latitude: InvalidInput
        crew = code in CREWS and self.rng.random() < 0.3
        who = CREWS[code] if crew else self.dispatcher()
        return "locate", lambda once: self.svc.locate_unit(who, code, lat, lon, once=once)

    def cancel_unit(self, state: State) -> tuple[str, Action]:
        en_route = [u for u in state.units if u.status == "EN_ROUTE"]
        code = self.pick(en_route if en_route and self.rng.random() < 0.85 else state.units).code
        who = self.dispatcher()
        return "cancel_unit", lambda once: self.svc.cancel_unit(who, code, "soak", once=once)

    def cancel_call(self, state: State) -> tuple[str, Action]:
        if not state.calls:
            return self.create(state)
        number = self.pick(state.calls).number
        if self.rng.random() < 0.03:
            number = "C-999999"  # no such call: NotFound
        who = self.dispatcher()
        return "cancel_call", lambda once: self.svc.cancel_call(who, number, "soak", once=once)

    def close_call(self, state: State) -> tuple[str, Action]:
        arrived = [
            c for c in state.calls if c.status in ("ON_SCENE", "TRANSPORTING", "AT_HOSPITAL")
        ]
        calls = arrived if arrived and self.rng.random() < 0.85 else state.calls
        if not calls:
            return self.create(state)
        number, who = self.pick(calls).number, self.dispatcher()
        return "close_call", lambda once: self.svc.close_call(
            who, number, "treated and released", once=once
        )

    def divert(self, state: State) -> tuple[str, Action]:
        """A unit en route or at the hospital taken to another open call (now and then one
        with its patient, or on no call: refused)."""
        movable = [u for u in state.units if u.status in ("EN_ROUTE", "AT_HOSPITAL")]
        if not state.calls:
            return self.create(state)
        unit = self.pick(movable if movable and self.rng.random() < 0.9 else state.units)
        number, who, code = self.pick(state.calls).number, self.dispatcher(), unit.code
        return "divert", lambda once: self.svc.divert(who, code, number, "soak", once=once)

    def reopen(self, state: State) -> tuple[str, Action]:
        """Re-open a call this desk ended (or, rarely, one still open: refused)."""
        if not self.ended or self.rng.random() < 0.05:
            if not state.calls:
                return self.create(state)
            number = self.pick(state.calls).number
        else:
            number = self.rng.choice(self.ended)
        who = self.dispatcher()
        return "reopen", lambda once: self.svc.reopen_call(who, number, "soak", once=once)

    def queue(self, state: State) -> tuple[str, Action]:
        """Line up a busy unit's next call (a pending one, mostly), or take one back."""
        busy = [u for u in state.units if u.call_number is not None]
        pending = [c for c in state.calls if c.status == "RECEIVED"]
        if not busy or not pending:
            return self.create(state)
        unit, who = self.pick(busy), self.dispatcher()
        code = unit.code
        if unit.queued_call is not None and self.rng.random() < 0.5:
            return "unqueue", lambda once: self.svc.unqueue(who, code, once=once)
        number = self.pick(pending).number
        return "queue", lambda once: self.svc.queue(who, code, number, once=once)

    def hospital(self, state: State) -> tuple[str, Action]:
        code = self.rng.choice(HOSPITALS)
        # Mostly open, so transports keep finding somewhere to go.
        status = self.rng.choices(["OPEN", "DIVERSION", "CLOSED"], weights=[6, 3, 1])[0]
        beds = self.rng.randint(0, 20) if self.rng.random() < 0.5 else None
        who = SUPERVISOR if self.rng.random() < 0.9 else self.dispatcher()  # Forbidden for these
        return "hospital_status", lambda once: self.svc.hospital_status(
            who, code, status, beds=beds, once=once
        )


# -- the soak -----------------------------------------------------------------------------------


def test_soak_keeps_every_invariant(
    world: DispatchService, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=TRANSACTIONS_LOG)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO units (code, capability, station_id)"
                " SELECT :code, :capability, id FROM stations WHERE code = 'S2'"
            ),
            [{"code": c, "capability": cap} for c, cap in EXTRA_UNITS],
        )
    board = Board(world)
    desks = [Desk(world, board, BASE_SEED + i, i % SECTORS) for i in range(WORKERS)]
    tally = Tally()
    # Daemon threads: if one hangs, the test fails below and the run can still exit.
    threads = [
        threading.Thread(target=d.run, args=(tally,), name=f"soak-{i}", daemon=True)
        for i, d in enumerate(desks)
    ]
    for t in threads:
        t.start()
    deadline = tally.started + 2 * SOAK_SECONDS + JOIN_GRACE
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    stuck = [t.name for t in threads if t.is_alive()]
    assert not stuck, f"still running {JOIN_GRACE} s after the soak ended: {stuck}"
    elapsed = time.monotonic() - tally.started

    unexpected = [u for d in desks for u in d.unexpected]
    assert not unexpected, (
        f"{len(unexpected)} operation(s) failed with something other than a domain error "
        f"(base seed {BASE_SEED}):\n" + "\n".join(unexpected[:3])
    )
    outcomes = tally.outcomes()
    summary = f"{elapsed:.1f} s, base seed {BASE_SEED}: " + ", ".join(
        f"{op} {result}: {n}" for (op, result), n in sorted(outcomes.items())
    )
    # Printed for the long runs (pytest -s) and shown with any failure below.
    print(f"\nsoak {summary}")

    assert violations(engine) == "", summary

    # Real work, of every kind.
    assert tally.dispatched() >= MIN_DISPATCHES, summary
    assert tally.missing() == [], summary
    # Writes were sent again under their ids and found done (any other answer to a done write
    # was reported as unexpected above).
    assert outcomes[("retry", "AlreadyDone")] > 0, summary
    # The contention was real: desks got in each other's way, and were told so.
    assert sum(n for (_, result), n in outcomes.items() if result == "Conflict") > 0, summary

    # Locks are always taken in one order, so no deadlock, not even one write() silently retried.
    retried = [
        r.getMessage()
        for r in caplog.records
        if r.name == TRANSACTIONS_LOG and "retried" in r.getMessage()
    ]
    assert retried == [], summary
