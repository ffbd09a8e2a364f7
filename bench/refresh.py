"""4. Refresh cost against the size of the history: 1k versus 100k closed calls, 500 units.

Two databases on one throwaway server, identical but for the history (closed calls, each with a
cleared assignment carrying every NEMSIS time, spread over the last weeks). In each, unit U1 is
on an open call. Measured per refresh of that one change, as the desk's listener does it:

* `ReadService.changed(unit_ids=[U1], call_ids=[its call])`, the read, alternating between the
  two databases so that a burst of load on the machine hits both alike;
* `DeskScreen.apply` of that partial snapshot on a headless desk (the unit's status alternates,
  so a cell really changes); the goal is judged on changed + apply. Shown besides: the time until
  the screen has been redrawn after the apply, which does not depend on the history.

Reference: the same rows read by primary key with bare psycopg (unit, call, the call's
assignments), in each database. Also shown: the full `snapshot()` a desk loads at start and after
every reconnect.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
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
UNITS = 500  # in all, with the 12 of the demo area
OPEN_CALLS = 20
READS = 200
SNAPSHOTS = 10
APPLIES = 20  # each waits for a redraw, which as shipped takes ~0.3 s with 500 units

_RAW_READS = (
    "SELECT * FROM units WHERE id = %(unit)s",
    "SELECT * FROM calls WHERE id = %(call)s",
    "SELECT * FROM assignments WHERE call_id = %(call)s",
)


def prepare(srv: BenchServer, database: str, history: int) -> tuple[int, int]:
    """A database with UNITS units, OPEN_CALLS pending calls and `history` closed calls; U1 is
    dispatched to the first pending call. Returns (U1's id, that call's id)."""
    url = srv.dispatch_database(database)
    engine, service = service_for(url)
    try:
        add_units(engine, UNITS - 12)
        calls = add_pending_calls(engine, OPEN_CALLS)
        add_history(srv, database, history)
        view = service.dispatch("alice", calls[0], ["U1"])
        unit_id = next(u.id for u in service.units() if u.code == "U1")
        return unit_id, view.call_id
    finally:
        engine.dispose()


def time_reads(
    srv: BenchServer, targets: dict[int, tuple[int, int]]
) -> dict[int, dict[str, list[float]]]:
    """Time the reads in every database, alternating between them on each repeat, so a burst
    of load on the machine hits both history sizes alike."""
    services = {h: service_for(srv.url(f"history_{h}")) for h in targets}
    raws = {h: psycopg.connect(srv.conninfo(f"history_{h}")) for h in targets}
    out: dict[int, dict[str, list[float]]] = {
        h: {"changed": [], "snapshot": [], "raw": []} for h in targets
    }
    try:
        for i in range(READS + 20):  # the first 20 warm pools, caches and the server's buffers
            for history, (unit_id, call_id) in targets.items():
                service = services[history][1]
                t0 = time.perf_counter()
                service.changed(unit_ids=[unit_id], call_ids=[call_id])
                t1 = time.perf_counter()
                conn = raws[history]
                with conn.transaction():
                    for statement in _RAW_READS:
                        conn.execute(statement, {"unit": unit_id, "call": call_id}).fetchall()  # type: ignore[arg-type]
                t2 = time.perf_counter()
                if i >= 20:
                    out[history]["changed"].append(t1 - t0)
                    out[history]["raw"].append(t2 - t1)
        for _ in range(SNAPSHOTS):
            for history in targets:
                t0 = time.perf_counter()
                services[history][1].snapshot()
                out[history]["snapshot"].append(time.perf_counter() - t0)
    finally:
        for engine, _ in services.values():
            engine.dispose()
        for conn in raws.values():
            conn.close()
    return out


def time_applies(
    srv: BenchServer, database: str, unit_id: int, call_id: int
) -> dict[str, list[float]]:
    """Apply the partial snapshot of the change to a headless desk, APPLIES times."""
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
    change = service.changed(unit_ids=[unit_id], call_ids=[call_id])
    unit = change.units[0]
    statuses = ("ON_SCENE", "EN_ROUTE")
    out: dict[str, list[float]] = {"apply": [], "painted": []}

    async def main() -> None:
        async with app.run_test(size=(160, 48)) as pilot:
            screen = app.desk
            assert isinstance(screen, DeskScreen)
            deadline = time.monotonic() + 30
            while len(screen.units.rows_by_key) < UNITS:
                if time.monotonic() > deadline:
                    raise RuntimeError("the desk did not load its units")
                await pilot.pause(0.01)
            await pilot.pause(0.2)
            loop = asyncio.get_running_loop()
            for i in range(APPLIES):
                # Each snapshot newer than the last, so the desk takes it; the status alternates.
                snapshot = dataclasses.replace(
                    change,
                    db_now=change.db_now + timedelta(seconds=i + 1),
                    units=(dataclasses.replace(unit, status=statuses[i % 2]),),
                )
                painted = loop.create_future()
                t0 = time.perf_counter()
                screen.apply(SnapshotLoaded(snapshot))
                t1 = time.perf_counter()
                screen.call_after_refresh(
                    lambda f=painted: f.done() or f.set_result(time.perf_counter())
                )
                done = await asyncio.wait_for(painted, 10)
                out["apply"].append(t1 - t0)
                out["painted"].append(done - t0)
                await pilot.pause(0.005)  # let whatever the refresh scheduled run before the next

    try:
        asyncio.run(main())
    finally:
        engine.dispose()
    return out


def run(srv: BenchServer) -> Report:
    targets = {history: prepare(srv, f"history_{history}", history) for history in HISTORIES}
    results = time_reads(srv, targets)
    for history, (unit_id, call_id) in targets.items():
        results[history].update(time_applies(srv, f"history_{history}", unit_id, call_id))

    small, large = results[HISTORIES[0]], results[HISTORIES[1]]

    def total(r: dict[str, list[float]], q: float) -> float:
        return pct(r["changed"], q) + pct(r["apply"], q)

    report = Report(f"4. Refresh cost vs history ({UNITS} units, one unit change)")
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
    growth = total(large, 50) / total(small, 50)
    report.goal(
        "refresh cost at 100k ≤ 1.5× at 1k (p50 of changed + apply)",
        f"{growth:.2f}×",
        growth <= 1.5,
    )
    report.note(
        f"{READS} refetches and {APPLIES} applies per history size; the history has one cleared "
        "assignment per closed call; VACUUM ANALYZE after loading, as autovacuum would"
    )
    return report


if __name__ == "__main__":
    with throwaway_server() as server:
        print(run(server).render())
