"""4. Refresh cost against the size of the history (1k versus 100k closed calls, 500 units, 200
open calls) and against a storm's open calls (10,000 open calls, 1,000 units).

Three databases on one throwaway server. Two are identical but for the history (closed calls,
each with a cleared assignment carrying every NEMSIS time, spread over the last weeks): 500 units,
200 open calls (P1-P4), 100 of them with a unit on the way. The third is a storm: 1,000 units and
10,000 open calls, 500 with a unit on the way. In each, unit U1 is on an open call. Measured per
refresh of one change, as the desk's listener does it:

* `ReadService.changed(unit_ids=[U1], call_ids=[its call])`, the read, alternating between the
  databases so that a burst of load on the machine hits them alike;
* `DeskScreen.apply` of that partial snapshot on a headless desk, for two changes: U1's status
  (it alternates, so a cell really changes), and a pending P2 call dispatched (it alternates
  between pending and dispatched, so it leaves one pane for the other and the panes re-sort);
  the goals are judged on changed + apply. Shown besides: the time until the screen has been
  redrawn after the apply.

Reference: the same rows read by primary key with bare psycopg (unit, call, the call's
assignments), in each database. Also shown: the full `snapshot()` a desk loads at start and after
every reconnect.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from dataclasses import dataclass
from datetime import timedelta

import psycopg

from bench.common import (
    BenchServer,
    Report,
    add_history,
    add_pending_calls,
    add_units,
    ms,
    pct,
    ratio,
    service_for,
    throwaway_server,
)

HISTORIES = (1_000, 100_000)


@dataclass(frozen=True)
class Size:
    units: int  # in all, with the 12 of the demo area
    open_calls: int  # P1, P2, P3, P4 in turn
    dispatched: int  # of them, each with one unit on the way
    history: int


TODAY = Size(units=500, open_calls=200, dispatched=100, history=HISTORIES[0])
DATABASES = {
    f"history_{HISTORIES[0]}": TODAY,
    f"history_{HISTORIES[1]}": dataclasses.replace(TODAY, history=HISTORIES[1]),
    "storm": Size(units=1_000, open_calls=10_000, dispatched=500, history=HISTORIES[0]),
}
READS = 200
SNAPSHOTS = 10
APPLIES = 20  # of each change; each waits for a redraw

_RAW_READS = (
    "SELECT * FROM units WHERE id = %(unit)s",
    "SELECT * FROM calls WHERE id = %(call)s",
    "SELECT * FROM assignments WHERE call_id = %(call)s",
)


@dataclass(frozen=True)
class Target:
    unit_id: int  # U1
    call_id: int  # U1's call
    pending_id: int  # a pending P2 call, the one the second change dispatches


def prepare(srv: BenchServer, database: str, size: Size) -> Target:
    """A database of `size`: U1 is dispatched to the first open call, the next `dispatched` - 1
    calls have a unit each."""
    url = srv.dispatch_database(database)
    engine, service = service_for(url)
    try:
        units = add_units(engine, size.units - 12)
        calls = add_pending_calls(engine, size.open_calls, priorities=4)
        add_history(srv, database, size.history)
        for number, unit in zip(calls[: size.dispatched], units, strict=False):
            service.dispatch("alice", number, [unit])
        by_number = {c.number: c for c in service.calls()}
        first = by_number[calls[0]]
        # A pending P2 call halfway down the list: dispatching it moves it between the panes,
        # which then re-sort.
        pending = [by_number[n] for n in calls[size.dispatched :] if by_number[n].priority == 2]
        unit_id = next(u.id for u in service.units() if u.code == "U1")
        return Target(unit_id, first.id, pending[len(pending) // 2].id)
    finally:
        engine.dispose()


def time_reads(srv: BenchServer, targets: dict[str, Target]) -> dict[str, dict[str, list[float]]]:
    """Time the reads in every database, alternating between them on each repeat, so a burst
    of load on the machine hits them alike."""
    services = {db: service_for(srv.url(db)) for db in targets}
    raws = {db: psycopg.connect(srv.conninfo(db)) for db in targets}
    out: dict[str, dict[str, list[float]]] = {
        db: {"changed": [], "snapshot": [], "raw": []} for db in targets
    }
    try:
        for i in range(READS + 20):  # the first 20 warm pools, caches and the server's buffers
            for db, target in targets.items():
                service = services[db][1]
                t0 = time.perf_counter()
                service.changed(unit_ids=[target.unit_id], call_ids=[target.call_id])
                t1 = time.perf_counter()
                conn = raws[db]
                with conn.transaction():
                    for statement in _RAW_READS:
                        conn.execute(
                            statement, {"unit": target.unit_id, "call": target.call_id}
                        ).fetchall()
                t2 = time.perf_counter()
                if i >= 20:
                    out[db]["changed"].append(t1 - t0)
                    out[db]["raw"].append(t2 - t1)
        for _ in range(SNAPSHOTS):
            for db in targets:
                t0 = time.perf_counter()
                services[db][1].snapshot()
                out[db]["snapshot"].append(time.perf_counter() - t0)
    finally:
        for engine, _ in services.values():
            engine.dispose()
        for conn in raws.values():
            conn.close()
    return out


def time_applies(
    srv: BenchServer, database: str, target: Target, size: Size
) -> dict[str, list[float]]:
    """Apply the partial snapshot of each change to a headless desk, APPLIES times each."""
    from dispatch_tui.app import DispatchApp
    from dispatch_tui.config import DEFAULT_AGING, DEFAULT_STATUS_STYLES, DeskOptions
    from dispatch_tui.screens.desk import DeskScreen
    from dispatch_tui.screens.live import DeskContext, SnapshotLoaded

    url = srv.url(database)
    engine, service = service_for(url)
    # LISTEN off: the benchmark feeds the snapshots itself; the clock off so no tick lands inside
    # a measurement.
    options = DeskOptions(
        dict(DEFAULT_AGING),
        dict(DEFAULT_STATUS_STYLES),
        listen=False,
        poll_seconds=3600,
        clock=False,
    )
    app = DispatchApp(DeskContext(service, service.operator("alice"), "bench", url, options))
    change = service.changed(unit_ids=[target.unit_id], call_ids=[target.call_id])
    unit = change.units[0]
    statuses = ("ON_SCENE", "EN_ROUTE")
    (pending,) = service.changed(call_ids=[target.pending_id]).calls
    dispatched = dataclasses.replace(
        pending, status="DISPATCHED", first_dispatched_at=change.db_now
    )
    out: dict[str, list[float]] = {"apply": [], "painted": [], "apply_call": [], "painted_call": []}

    async def main() -> None:
        async with app.run_test(size=(160, 48)) as pilot:
            screen = app.desk
            assert isinstance(screen, DeskScreen)
            deadline = time.monotonic() + 60

            def loaded() -> bool:
                calls = len(screen.pending.rows_by_key) + len(screen.active.rows_by_key)
                return len(screen.units.rows_by_key) == size.units and calls == size.open_calls

            while not loaded():
                if time.monotonic() > deadline:
                    raise RuntimeError("the desk did not load its units and calls")
                await pilot.pause(0.01)
            await pilot.pause(0.5)
            loop = asyncio.get_running_loop()
            for i in range(2 * APPLIES):
                # Each snapshot newer than the last, so the desk takes it. The changes alternate:
                # U1's status (it alternates), then the P2 call dispatched or back to pending.
                at = change.db_now + timedelta(seconds=i + 1)
                if i % 2 == 0:
                    unit_now = dataclasses.replace(unit, status=statuses[i // 2 % 2])
                    snapshot = dataclasses.replace(change, db_now=at, units=(unit_now,))
                    apply, painted_key = "apply", "painted"
                else:
                    call = dispatched if i // 2 % 2 == 0 else pending
                    snapshot = dataclasses.replace(change, db_now=at, calls=(call,), units=())
                    apply, painted_key = "apply_call", "painted_call"
                painted = loop.create_future()
                t0 = time.perf_counter()
                screen.apply(SnapshotLoaded(snapshot))
                t1 = time.perf_counter()
                screen.call_after_refresh(
                    lambda f=painted: f.done() or f.set_result(time.perf_counter())
                )
                done = await asyncio.wait_for(painted, 10)
                out[apply].append(t1 - t0)
                out[painted_key].append(done - t0)
                await pilot.pause(0.005)  # let whatever the refresh scheduled run before the next

    try:
        asyncio.run(main())
    finally:
        engine.dispose()
    return out


def run(srv: BenchServer) -> Report:
    targets = {db: prepare(srv, db, size) for db, size in DATABASES.items()}
    results = time_reads(srv, targets)
    for db, target in targets.items():
        results[db].update(time_applies(srv, db, target, DATABASES[db]))

    small, large = results[f"history_{HISTORIES[0]}"], results[f"history_{HISTORIES[1]}"]
    storm = results["storm"]

    def total(r: dict[str, list[float]], q: float, apply: str = "apply") -> float:
        return pct(r["changed"], q) + pct(r[apply], q)

    report = Report(
        f"4. Refresh cost vs history ({TODAY.units} units, {TODAY.open_calls} open calls, "
        "one unit change) and vs a storm's open calls"
    )
    rows = []
    for name, key in (
        ("ReadService.changed (the refetch)", "changed"),
        ("DeskScreen.apply", "apply"),
        ("apply → screen redrawn", "painted"),
        ("bare psycopg: the same rows by key", "raw"),
        ("full snapshot() (start-up, resync)", "snapshot"),
    ):
        rows.append(
            [
                name,
                ms(pct(small[key], 50)),
                ms(pct(large[key], 50)),
                ratio(pct(large[key], 50), pct(small[key], 50)),
                ms(pct(small[key], 99)),
                ms(pct(large[key], 99)),
            ]
        )
    rows.append(
        [
            "refresh = changed + apply",
            ms(total(small, 50)),
            ms(total(large, 50)),
            ratio(total(large, 50), total(small, 50)),
            ms(total(small, 99)),
            ms(total(large, 99)),
        ]
    )
    rows.append(
        [
            "refresh vs bare psycopg read",
            ratio(total(small, 50), pct(small["raw"], 50)),
            ratio(total(large, 50), pct(large["raw"], 50)),
            "",
            "",
            "",
        ]
    )
    report.table(
        [
            "per refresh",
            f"p50 ms at {HISTORIES[0] // 1000}k",
            f"p50 ms at {HISTORIES[1] // 1000}k",
            "100k / 1k",
            "p99 ms at 1k",
            "p99 ms at 100k",
        ],
        rows,
    )
    big = DATABASES["storm"]
    rows = []
    for name, key in (
        ("ReadService.changed (the refetch)", "changed"),
        ("U1's status: DeskScreen.apply", "apply"),
        ("U1's status: apply → screen redrawn", "painted"),
        ("a P2 call dispatched: DeskScreen.apply", "apply_call"),
        ("a P2 call dispatched: apply → redrawn", "painted_call"),
        ("full snapshot() (start-up, resync)", "snapshot"),
    ):
        rows.append(
            [
                name,
                ms(pct(small[key], 50)),
                ms(pct(storm[key], 50)),
                ratio(pct(storm[key], 50), pct(small[key], 50)),
                ms(pct(small[key], 99)),
                ms(pct(storm[key], 99)),
            ]
        )
    for name, apply in (("U1's status", "apply"), ("a P2 call dispatched", "apply_call")):
        rows.append(
            [
                f"{name}: refresh = changed + apply",
                ms(total(small, 50, apply)),
                ms(total(storm, 50, apply)),
                ratio(total(storm, 50, apply), total(small, 50, apply)),
                ms(total(small, 99, apply)),
                ms(total(storm, 99, apply)),
            ]
        )
    today = f"{TODAY.open_calls} calls, {TODAY.units} units"
    stormy = f"{big.open_calls:,} calls, {big.units:,} units"
    report.table(
        [
            "per refresh",
            f"p50 ms at {today}",
            f"p50 ms at {stormy}",
            "storm / today",
            "p99 ms today",
            "p99 ms storm",
        ],
        rows,
    )
    growth = total(large, 50) / total(small, 50)
    report.goal(
        "refresh cost at 100k ≤ 1.5× at 1k (p50 of changed + apply)",
        f"{growth:.2f}×",
        growth <= 1.5,
    )
    for name, apply in (("a unit's status", "apply"), ("a call dispatched", "apply_call")):
        growth = total(storm, 50, apply) / total(small, 50, apply)
        report.goal(
            f"refresh of {name} at {stormy} ≤ 2× at {today} (p50 of changed + apply)",
            f"{growth:.2f}× ({ms(total(storm, 50, apply)):.1f} vs "
            f"{ms(total(small, 50, apply)):.1f} ms)",
            growth <= 2,
        )
    report.note(
        f"{READS} refetches and {APPLIES} applies of each change per database; the history has "
        "one cleared assignment per closed call; VACUUM ANALYZE after loading, as autovacuum "
        "would; the storm's history is 1k closed calls"
    )
    return report


if __name__ == "__main__":
    with throwaway_server() as server:
        print(run(server).render())
