"""11. The map's redraw on a unit move, on the demo street grid and on a city's.

Two databases on one throwaway server, each with the demo area's stations and hospitals, 200
units (the demo's 12 and 188 more at the stations) and 100 pending calls: **demo**, Riverton's
street grid as `demo seed` loads it (`service.demo.gazetteer_rows`: 1,137 street lines, blocks of
about 500 m); **city**, the same area cut into blocks of about 100 m (a real city's street
centrelines, ~28,000 lines). A headless desk (160×48, LISTEN and clock off) shows the map (`m`),
fitting everything, and has read its streets. Measured per unit move, as the desk's listener
brings it (a partial snapshot: U1 40 m further on):

* the map's redraw on the move: `DeskScreen.apply` of the snapshot with the map shown (the panes'
  sync and the map's redraw), and apply → the screen redrawn;
* the same apply with the map hidden (the panes only), for context;
* `map_canvas.draw` alone, the pure drawing of the view: fitting everything (about 110 m a cell:
  streets, no names) and near (20 m a cell round U1: streets and names).

Reference, in the same run, in turn with ours: a bare Textual app with one DataTable of 200 rows
(the units pane's size), one cell updated (`update_cell`) → the screen redrawn.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import text

from bench.common import (
    BenchServer,
    Report,
    add_pending_calls,
    add_units,
    engine_for,
    ms,
    pct,
    ratio,
    service_for,
    throwaway_server,
)
from dispatch_tui.db.engine import make_sessionmaker
from dispatch_tui.service import demo, gazetteer_import

MOVES = 60  # of each kind, after WARMUP
WARMUP = 10
DRAWS = 60
SIZE = (160, 48)
UNITS = 200
CALLS = 100
STEP_DEGREES = 0.0005  # a unit's move: about 40 m east or west
# A unit's move on the map costs no more than one changed cell in a plain table (p50).
GOAL_RATIO = 1.0

# The city: Riverton's area in blocks of about 100 m.
CITY = (demo.GRID.south, demo.GRID.north, demo.GRID.west, demo.GRID.east, 0.001)

_CITY_SQL = """
INSERT INTO street_segments (name, street_key, coords, min_lat, max_lat, min_lon, max_lon,
                             source, source_key)
SELECT name, lower(name), jsonb_build_array(jsonb_build_array(lon0, lat0),
                                            jsonb_build_array(lon1, lat1)),
       least(lat0, lat1), greatest(lat0, lat1), least(lon0, lon1), greatest(lon0, lon1),
       'bench-city', name || '|' || k
FROM (
    SELECT 'Street ' || i AS name, :south + i * :step AS lat0, :south + i * :step AS lat1,
           :west + k * :step AS lon0, :west + (k + 1) * :step AS lon1, k
    FROM generate_series(0, ((:north - :south) / :step)::int) AS i,
         generate_series(0, ((:east - :west) / :step)::int - 1) AS k
    UNION ALL
    SELECT 'Avenue ' || j, :south + k * :step, :south + (k + 1) * :step,
           :west + j * :step, :west + j * :step, k
    FROM generate_series(0, ((:east - :west) / :step)::int) AS j,
         generate_series(0, ((:north - :south) / :step)::int - 1) AS k
) AS blocks
"""


def prepare(srv: BenchServer, database: str, city: bool) -> int:
    """A database with the demo area, its units and calls, and its streets; the number of
    street lines."""
    engine = engine_for(srv.dispatch_database(database))
    try:
        add_units(engine, UNITS - 12)
        add_pending_calls(engine, CALLS, priorities=4)
        if city:
            south, north, west, east, step = CITY
            with engine.begin() as conn:
                conn.execute(
                    text(_CITY_SQL),
                    {"south": south, "north": north, "west": west, "east": east, "step": step},
                )
        else:
            gazetteer_import.load(make_sessionmaker(engine), demo.SOURCE, demo.gazetteer_rows())
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM street_segments")).scalar_one())
    finally:
        engine.dispose()


def time_desk(srv: BenchServer, database: str) -> dict[str, list[float]]:
    """U1 moved MOVES times with the map shown and MOVES times with it hidden, in turn; and the
    pure drawing of the fitted and of a near view."""
    from dispatch_tui.app import DispatchApp
    from dispatch_tui.config import DEFAULT_AGING, DEFAULT_STATUS_STYLES, DeskOptions
    from dispatch_tui.screens.desk import DeskScreen
    from dispatch_tui.screens.live import DeskContext, SnapshotLoaded
    from dispatch_tui.widgets import map_canvas

    url = srv.url(database)
    engine, service = service_for(url)
    options = DeskOptions(
        dict(DEFAULT_AGING),
        dict(DEFAULT_STATUS_STYLES),
        listen=False,
        poll_seconds=3600,
        clock=False,
    )
    app = DispatchApp(DeskContext(service, service.operator("alice"), "bench", url, options))
    u1 = next(u for u in service.units() if u.code == "U1")
    change = service.changed(unit_ids=[u1.id])
    out: dict[str, list[float]] = {
        "apply_map": [],
        "painted_map": [],
        "apply_panes": [],
        "painted_panes": [],
        "draw_fit": [],
        "draw_near": [],
    }

    async def main() -> None:
        async with app.run_test(size=SIZE) as pilot:
            screen = app.desk
            assert isinstance(screen, DeskScreen)
            await _until(pilot, lambda: len(screen.units.rows_by_key) == UNITS)
            await pilot.press("m")
            head = screen.map.query_one("#map-head")
            await _until(
                pilot,
                lambda: "streets" in str(head.render()) and "reading" not in str(head.render()),
            )
            await pilot.pause(0.3)
            loop = asyncio.get_running_loop()
            for i in range(2 * (MOVES + WARMUP)):
                shown = i % 2 == 0
                if shown != bool(screen.map.display):
                    await pilot.press("m")
                    await pilot.pause(0.05)
                at = change.db_now + timedelta(seconds=i + 1)
                east = STEP_DEGREES if (i // 2) % 2 == 0 else -STEP_DEGREES
                moved = dataclasses.replace(
                    u1, lat=(u1.lat or 0.0), lon=(u1.lon or 0.0) + east, position_at=at
                )
                snapshot = dataclasses.replace(change, db_now=at, units=(moved,))
                painted = loop.create_future()
                t0 = time.perf_counter()
                screen.apply(SnapshotLoaded(snapshot))
                t1 = time.perf_counter()
                screen.call_after_refresh(
                    lambda f=painted: f.done() or f.set_result(time.perf_counter())
                )
                done = await asyncio.wait_for(painted, 10)
                if i >= 2 * WARMUP:
                    kind = "map" if shown else "panes"
                    out[f"apply_{kind}"].append(t1 - t0)
                    out[f"painted_{kind}"].append(done - t0)
                await pilot.pause(0.005)
            # The pure drawing, on what the map holds now.
            if not screen.map.display:
                await pilot.press("m")
                await pilot.pause(0.05)
            view = screen.map.view
            assert view is not None
            markers = screen.map.scene().markers
            streets = screen.map.streets_for(view)
            near = view.centred(u1.lat or 0.0, u1.lon or 0.0).zoomed(view.metres / 20.0)
            near_streets = screen.map.streets_for(near)
            for _ in range(DRAWS):
                for key, v, s, names in (
                    ("draw_fit", view, streets, view.metres <= 150),
                    ("draw_near", near, near_streets, True),
                ):
                    t0 = time.perf_counter()
                    map_canvas.draw(v, s, markers, street_style="dim", names=names, most_filled=0.7)
                    out[key].append(time.perf_counter() - t0)

    try:
        asyncio.run(main())
    finally:
        engine.dispose()
    return out


def time_bare_table() -> list[float]:
    """A bare DataTable of UNITS rows: one cell updated → the screen redrawn."""
    from textual.app import App, ComposeResult
    from textual.widgets import DataTable

    class Bare(App[None]):
        def compose(self) -> ComposeResult:
            yield DataTable()

        def on_mount(self) -> None:
            table = self.query_one(DataTable)
            table.add_columns("Unit", "Cap", "Status", "Time", "Call", "Stn")
            for n in range(UNITS):
                table.add_row(f"U{n}", "ALS", "AVAILABLE", "3m", "", "S1", key=str(n))

    out: list[float] = []

    async def main() -> None:
        app = Bare()
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause(0.3)
            table = app.query_one(DataTable)
            loop = asyncio.get_running_loop()
            for i in range(MOVES + WARMUP):
                painted = loop.create_future()
                t0 = time.perf_counter()
                table.update_cell(
                    "0", table.ordered_columns[2].key, "EN ROUTE" if i % 2 else "ON SCENE"
                )
                app.screen.call_after_refresh(
                    lambda f=painted: f.done() or f.set_result(time.perf_counter())
                )
                done = await asyncio.wait_for(painted, 10)
                if i >= WARMUP:
                    out.append(done - t0)
                await pilot.pause(0.005)

    asyncio.run(main())
    return out


async def _until(pilot: Any, predicate: Callable[[], Any], within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError("the desk did not get there")
        await pilot.pause(0.02)


def run(srv: BenchServer) -> Report:
    lines = {"demo": prepare(srv, "demo", city=False), "city": prepare(srv, "city", city=True)}
    bare = time_bare_table()
    results = {db: time_desk(srv, db) for db in lines}
    bare += time_bare_table()  # before and after: a change in the machine's load hits both
    report = Report(
        f"11. The map's redraw on a unit move ({UNITS} units, {CALLS} pending calls, "
        f"{SIZE[0]}×{SIZE[1]})"
    )
    rows = []
    for name, key in (
        ("unit move, map shown: DeskScreen.apply", "apply_map"),
        ("unit move, map shown: apply → screen redrawn", "painted_map"),
        ("unit move, map hidden: apply → redrawn (panes only)", "painted_panes"),
        ("map_canvas.draw, the view fitting everything", "draw_fit"),
        ("map_canvas.draw, near (20 m a cell, names)", "draw_near"),
    ):
        demo_r, city_r = results["demo"][key], results["city"][key]
        rows.append(
            [
                name,
                ms(pct(demo_r, 50)),
                ms(pct(demo_r, 99)),
                ms(pct(city_r, 50)),
                ms(pct(city_r, 99)),
                ratio(pct(demo_r, 50), pct(bare, 50)),
            ]
        )
    rows.append(
        [
            "reference: bare DataTable, one cell → screen redrawn",
            ms(pct(bare, 50)),
            ms(pct(bare, 99)),
            "",
            "",
            "1.00×",
        ]
    )
    report.table(
        [
            "per unit move",
            f"p50 ms, demo ({lines['demo']:,} lines)",
            "p99 ms, demo",
            f"p50 ms, city ({lines['city']:,} lines)",
            "p99 ms, city",
            "demo p50 / reference p50",
        ],
        rows,
    )
    for db in lines:
        ours, reference = pct(results[db]["painted_map"], 50), pct(bare, 50)
        report.goal(
            f"{db}: a unit move redrawn on the map ≤ {GOAL_RATIO:.0f}× one cell changed in a bare "
            "DataTable (p50, → screen redrawn)",
            f"{ratio(ours, reference)} ({ms(ours):.1f} vs {ms(reference):.1f} ms; p99 "
            f"{ms(pct(results[db]['painted_map'], 99)):.1f} vs {ms(pct(bare, 99)):.1f} ms)",
            ours <= GOAL_RATIO * reference,
        )
    report.note(
        f"{MOVES} moves of each kind per database after {WARMUP} left out, map shown and hidden "
        f"in turn; {DRAWS} draws of each view; the reference {2 * MOVES} cell updates, half "
        "before the desks and half after"
    )
    return report


if __name__ == "__main__":
    with throwaway_server() as server:
        print(run(server).render())
