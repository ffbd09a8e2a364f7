"""9. The intake's address completion on a gazetteer of 100k address points.

Riverton's street grid (`service.demo.Grid`) with 44 houses on every side of every block:
about 100,000 address points and 1,137 street lines, loaded through `gis import`'s own loader
(`service.gazetteer_import.load`, timed too), then VACUUM ANALYZE. What a dispatcher types in the
location field is asked of `ReadService.complete`, as the desk's worker asks it: a house number
and the start of a street (`1456 w ma`), a street alone (`magn`), a whole address with two letters
swapped (no prefix matches: the geocoder answers). One read transaction each, on a warm pool.

Reference, in the same run on the same server, in turn with ours: the address point's primary-key
lookup with bare psycopg (`SELECT ... FROM address_points WHERE id = %s`), the least a read can
cost.
"""

from __future__ import annotations

import random
import time

import psycopg

from bench.common import BenchServer, Report, engine_for, fmt, ms, pct, ratio, throwaway_server
from dispatch_tui.db.engine import make_sessionmaker
from dispatch_tui.rules.addresses import AddressRow
from dispatch_tui.service import demo, gazetteer_import
from dispatch_tui.service.read_service import ReadService

HOUSES = 44  # on each side of each block: ~100k address points
QUERIES = 1500  # of each kind of typing, after WARMUP
WARMUP = 100
GOAL_P99_MS = 50.0


def _typed(rows: list[AddressRow], rng: random.Random) -> list[tuple[str, str]]:
    """(kind, text) as a dispatcher types a location, in a shuffled order."""
    asked: list[tuple[str, str]] = []
    for row in rng.sample(rows, QUERIES):
        direction, name, *_ = row.street.split()
        asked.append(("number and street start", f"{row.number} {direction.lower()} {name[:2]}"))
    for row in rng.sample(rows, QUERIES):
        asked.append(("street start", row.street.split()[1][:4].lower()))
    for row in rng.sample(rows, QUERIES):
        direction, name, kind = row.street.split()[:3]
        slipped = name[1] + name[0] + name[2:] if name[0] != name[1] else name
        asked.append(("a slip: the geocoder", f"{row.number} {direction} {slipped} {kind}"))
    rng.shuffle(asked)
    return asked


def run(srv: BenchServer) -> Report:
    url = srv.dispatch_database()
    engine = engine_for(url, pool_size=2)
    sessions = make_sessionmaker(engine)
    rows = demo.gazetteer_rows(demo.Grid(houses=HOUSES))
    points = [r for r in rows if isinstance(r, AddressRow)]
    started = time.perf_counter()
    loaded = gazetteer_import.load(sessions, demo.SOURCE, rows)
    load_seconds = time.perf_counter() - started
    with psycopg.connect(srv.conninfo("dispatch"), autocommit=True) as admin:
        admin.execute("VACUUM ANALYZE")
    service = ReadService(sessions, desk="bench")
    rng = random.Random(9)
    asked = _typed(points, rng)
    ids = [rng.randint(1, loaded.points) for _ in asked]
    ours: dict[str, list[float]] = {}
    reference: list[float] = []
    empty = 0
    with psycopg.connect(srv.conninfo("dispatch"), autocommit=True) as bare:
        query = "SELECT id, number, street, unit, city, postcode, lat, lon FROM address_points WHERE id = %s"
        for i, ((kind, text), point) in enumerate(zip(asked, ids, strict=True)):
            t0 = time.perf_counter()
            found = service.complete(text)
            t1 = time.perf_counter()
            bare.execute(query, (point,), prepare=True).fetchone()
            t2 = time.perf_counter()
            if i < WARMUP:
                continue
            ours.setdefault(kind, []).append(t1 - t0)
            reference.append(t2 - t1)
            empty += not found
    engine.dispose()

    report = Report(f"9. Gazetteer: completion on {loaded.points:,} address points")
    every = [t for times in ours.values() for t in times]
    ref50, ref99 = ms(pct(reference, 50)), ms(pct(reference, 99))
    table = []
    for kind, times in [*ours.items(), ("all completions", every)]:
        p50, p99 = ms(pct(times, 50)), ms(pct(times, 99))
        table.append((kind, len(times), p50, p99, ratio(p99, ref99)))
    table.append(("bare psycopg primary-key lookup (reference)", len(reference), ref50, ref99, "–"))
    report.table(("typed", "n", "p50 ms", "p99 ms", "p99 vs reference"), table)
    p99 = ms(pct(every, 99))
    report.goal(f"completion p99 ≤ {GOAL_P99_MS:.0f} ms", f"{fmt(p99)} ms", p99 <= GOAL_P99_MS)
    report.note(
        f"loaded {loaded.points:,} points and {loaded.segments:,} lines in {load_seconds:.1f} s "
        f"({loaded.points / load_seconds:,.0f} points/s, batches of {gazetteer_import.BATCH})"
    )
    report.note(f"{empty} of {len(every)} completions offered nothing (a number not on a street)")
    return report


if __name__ == "__main__":
    with throwaway_server() as server:
        print(run(server).render())
