"""6. Board KPIs with 100k closed calls in the history.

`ReadService.kpis` for the board's three windows (last hour, the shift, 24 h), each the fractiles
of call processing, turnout, response and offload computed by PostgreSQL, timed as the board asks
for them (one read transaction for all three windows), on a read-only engine like the board's.

Reference: a plain `SELECT count(*)` of the calls received in each of the same windows, in one
transaction, on the same server.
"""

from __future__ import annotations

import time
from datetime import timedelta

import psycopg

from bench.common import (
    HISTORY_DAYS,
    BenchServer,
    Report,
    add_history,
    add_units,
    engine_for,
    ms,
    pct,
    ratio,
    throwaway_server,
)
from dispatch_tui.db.engine import make_engine, make_sessionmaker
from dispatch_tui.rules import norms
from dispatch_tui.service.read_service import ReadService

HISTORY = 100_000
UNITS = 500
REPEATS = 40


def run(srv: BenchServer) -> Report:
    url = srv.dispatch_database()
    engine = engine_for(url, pool_size=1)
    add_units(engine, UNITS - 12)
    engine.dispose()
    add_history(srv, "dispatch", HISTORY)

    board = make_engine(url, application_name="dispatch-tui board", read_only=True)
    service = ReadService(make_sessionmaker(board), desk="board@bench")
    now = service.now()
    windows = {
        "last hour": (now - timedelta(hours=1), now),
        "shift": (norms.shift_start(now), now),
        "24 h": (now - timedelta(hours=24), now),
    }
    ours: list[float] = []
    counts: dict[str, int] = {}
    try:
        for i in range(REPEATS + 5):
            t0 = time.perf_counter()
            result = service.kpis(windows)
            if i >= 5:  # the first few warm the pool, the caches and the server's buffers
                ours.append(time.perf_counter() - t0)
        counts = {
            name: groups["all"][0].count for name, groups in result.items() if "all" in groups
        }
    finally:
        board.dispose()

    reference: list[float] = []
    window_calls: dict[str, int] = {}
    with psycopg.connect(srv.conninfo("dispatch")) as conn:
        for i in range(REPEATS + 5):
            t0 = time.perf_counter()
            with conn.transaction():
                for name, (since, until) in windows.items():
                    row = conn.execute(
                        "SELECT count(*) FROM calls WHERE received_at >= %s AND received_at < %s",
                        (since, until),
                    ).fetchone()
                    window_calls[name] = int(row[0]) if row else 0
            if i >= 5:
                reference.append(time.perf_counter() - t0)

    report = Report(f"6. Board KPIs ({HISTORY // 1000}k closed calls over {HISTORY_DAYS:.0f} days)")
    report.table(
        ["three windows, one transaction", "p50 ms", "p99 ms", "ratio to count(*) p50"],
        [
            [
                "ReadService.kpis (fractiles of 4 intervals)",
                ms(pct(ours, 50)),
                ms(pct(ours, 99)),
                ratio(pct(ours, 50), pct(reference, 50)),
            ],
            [
                "bare psycopg: SELECT count(*) per window",
                ms(pct(reference, 50)),
                ms(pct(reference, 99)),
                "1.00×",
            ],
        ],
    )
    p50 = ms(pct(ours, 50))
    report.goal(
        "≤ 50 ms for the three windows (p50)",
        f"{p50:.1f} ms (p99 {ms(pct(ours, 99)):.1f} ms)",
        p50 <= 50,
    )
    report.note(
        "calls in the windows: "
        + ", ".join(f"{name} {window_calls.get(name, 0):,}" for name in windows)
        + "; call-processing intervals counted: "
        + ", ".join(f"{name} {counts.get(name, 0):,}" for name in windows)
        + f"; {REPEATS} runs each"
    )
    return report


if __name__ == "__main__":
    with throwaway_server() as server:
        print(run(server).render())
