"""1. Dispatch throughput and latency: 1, 4, 8 and 16 desks dispatching at once.

Each desk is a process with its own engine, sending distinct units to distinct calls through
`DispatchService.dispatch`, all released together by a barrier, for a fixed time. The reference is
pgbench on the same server in the same run: TPC-B-like (`-i` scale 1 in its own database) and `-N`
(no teller or branch updates), with the same client counts. Both pay the same commit (fsync).

A second table takes the 4-desk dispatch apart. The same database work is run by bare psycopg
twice: once as the step-by-step transaction's statements one by one (14 round trips without
SQLAlchemy and the app's Python), once as a single statement (one round trip, what the service's
one-statement dispatch does). Per dispatch it also shows the CPU
spent by the desk process and by its PostgreSQL backend, read from /proc.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import psycopg
from sqlalchemy import text

from bench.common import (
    MP,
    BenchServer,
    Report,
    add_pending_calls,
    add_units,
    engine_for,
    fmt,
    ms,
    pct,
    pgbench_init,
    pgbench_run,
    ratio,
    run_processes,
    service_for,
    throwaway_server,
)
from dispatch_tui.rules.commands import Dispatch, Once

DESKS = (1, 4, 8, 16)
SECONDS = 3.0  # per row, after the barrier
# Enough for 2,500 dispatches/s for SECONDS; a desk that runs out of units simply stops early.
# (With 1,200, the rows ran out within a second once a dispatch was one statement, and measured
# mostly the desks' first dispatches.)
UNITS = 8000
# Dispatches each desk makes before the barrier, left out of the figures, in every variant alike:
# a desk's first statements pay one-off costs (psycopg preparing them, PostgreSQL planning them
# anew for the first five runs) that a desk in service has long paid.
WARMUP = 10
PGBENCH_SECONDS = 3  # 8 pgbench runs: 10 s each would take the benchmark well past its minute
_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_of(pid: int) -> float:
    """CPU seconds (user + system) used so far by process `pid` (a PostgreSQL backend)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


# -- the three ways of doing one dispatch --------------------------------------------------------


def _service_desk(url: str) -> tuple[Callable[[str, str], None], int, Callable[[], None]]:
    engine, service = service_for(url, desk="bench-desk")
    service.operator("alice")  # connect and warm the statement caches before the start
    with engine.connect() as conn:
        # The pool's one connection: the first dispatch takes it for its statements
        # (db.engine.DriverConnections) and keeps it for every later dispatch of this desk.
        backend = int(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())

    def one(number: str, unit: str) -> None:
        # As a desk sends it: under a request id of its own, kept in the same statement.
        units = (unit,)
        once = Once.of("alice", Dispatch(number, units))
        service.dispatch("alice", number, units, once=once)

    return one, backend, engine.dispose


# What the service's step-by-step dispatch sent before the one-statement path existed (see the
# SQLAlchemy echo of that version): the pool's pre-ping, the lock timeout, the permission check,
# the locks, the re-checks, the writes, the audit row and the call it returned. Kept as the
# reference for a dispatch done in many round trips.
_STATEMENTS = (
    "SELECT 1",
    "SELECT set_config('lock_timeout', '5s', true)",
    "SELECT * FROM staff WHERE lower(username) = %(user)s",
    "SELECT * FROM calls WHERE number = %(number)s FOR UPDATE",
    "SELECT * FROM units WHERE code IN (%(unit)s) ORDER BY id FOR UPDATE",
    "SELECT clock_timestamp()",
    "SELECT a.*, u.* FROM assignments a JOIN units u ON u.id = a.unit_id"
    " WHERE a.call_id = %(call_id)s AND a.cleared_at IS NULL AND a.cancelled_at IS NULL ORDER BY u.id",
    "INSERT INTO assignments (call_id, unit_id, paramedic_id, dispatcher_id, hospital_id, notified_at)"
    " VALUES (%(call_id)s, %(unit_id)s, NULL, %(staff_id)s, NULL, %(at)s)",
    "UPDATE units SET status = 'EN_ROUTE', status_since = %(at)s WHERE id = %(unit_id)s",
    "UPDATE calls SET status = 'DISPATCHED', dispatched_by_id = %(staff_id)s,"
    " first_dispatched_at = %(at)s WHERE id = %(call_id)s",
    "INSERT INTO audit_log (at, operator_id, operator, desk, action, call_id, unit_id, details)"
    " VALUES (clock_timestamp(), %(staff_id)s, 'alice', 'bench', 'dispatch', %(call_id)s,"
    " %(unit_id)s, '{}')",
    "SELECT c.*, h.code, s.username FROM calls c LEFT JOIN hospitals h"
    " ON h.id = c.destination_hospital_id LEFT JOIN staff s ON s.id = c.dispatched_by_id"
    " WHERE c.id IN (%(call_id)s) ORDER BY c.priority, c.received_at, c.id LIMIT 500",
    "SELECT a.*, c.number, u.code FROM assignments a JOIN calls c ON c.id = a.call_id"
    " JOIN units u ON u.id = a.unit_id LEFT JOIN staff p ON p.id = a.paramedic_id"
    " LEFT JOIN staff d ON d.id = a.dispatcher_id LEFT JOIN hospitals h ON h.id = a.hospital_id"
    " WHERE a.call_id IN (%(call_id)s) ORDER BY a.notified_at, a.id",
)

# The same checks and writes in one statement: lock the call and the unit (only if available),
# insert the assignment, move the unit and the call, write the audit row.
_SINGLE = """
WITH staff_row AS (
    SELECT id FROM staff WHERE lower(username) = %(user)s AND active AND role = 'dispatcher'
), call_row AS (
    SELECT id FROM calls WHERE number = %(number)s AND status IN ('RECEIVED', 'DISPATCHED')
    FOR UPDATE
), unit_row AS (
    SELECT id FROM units WHERE code = %(unit)s AND status = 'AVAILABLE' FOR UPDATE
), new AS (
    INSERT INTO assignments (call_id, unit_id, dispatcher_id, notified_at)
    SELECT c.id, u.id, s.id, clock_timestamp() FROM call_row c, unit_row u, staff_row s
    WHERE NOT EXISTS (SELECT 1 FROM assignments a WHERE a.call_id = c.id
                      AND a.cleared_at IS NULL AND a.cancelled_at IS NULL)
    RETURNING call_id, unit_id, dispatcher_id, notified_at
), moved AS (
    UPDATE units SET status = 'EN_ROUTE', status_since = new.notified_at FROM new
    WHERE units.id = new.unit_id RETURNING units.id
), dispatched AS (
    UPDATE calls SET status = 'DISPATCHED',
        first_dispatched_at = coalesce(calls.first_dispatched_at, new.notified_at),
        dispatched_by_id = coalesce(calls.dispatched_by_id, new.dispatcher_id)
    FROM new WHERE calls.id = new.call_id RETURNING calls.id
), audited AS (
    INSERT INTO audit_log (operator_id, operator, desk, action, call_id, unit_id, details)
    SELECT dispatcher_id, 'alice', 'bench', 'dispatch', call_id, unit_id, '{}' FROM new
    RETURNING id
)
SELECT count(*) FROM new
"""


def _raw_desk(
    url_conninfo: str, single: bool
) -> tuple[Callable[[str, str], None], int, Callable[[], None]]:
    conn = psycopg.connect(url_conninfo, autocommit=single)
    backend = conn.info.backend_pid

    def statements(number: str, unit: str) -> None:
        params: dict[str, Any] = {"user": "alice", "number": number, "unit": unit}
        with conn.transaction(), conn.cursor() as cur:
            for sql_text in _STATEMENTS:
                cur.execute(sql_text, params)  # type: ignore[arg-type]
                if sql_text.startswith("SELECT * FROM staff"):
                    params["staff_id"] = cur.fetchone()[0]  # type: ignore[index]
                elif sql_text.startswith("SELECT * FROM calls"):
                    params["call_id"] = cur.fetchone()[0]  # type: ignore[index]
                elif sql_text.startswith("SELECT * FROM units"):
                    params["unit_id"] = cur.fetchone()[0]  # type: ignore[index]
                elif sql_text.startswith("SELECT clock"):
                    params["at"] = cur.fetchone()[0]  # type: ignore[index]
                elif cur.description is not None:
                    cur.fetchall()

    def one_statement(number: str, unit: str) -> None:
        row = conn.execute(_SINGLE, {"user": "alice", "number": number, "unit": unit}).fetchone()  # type: ignore[arg-type]
        if not row or row[0] != 1:
            raise RuntimeError(f"single-statement dispatch of {unit} to {number} did nothing")

    return (one_statement if single else statements), backend, conn.close


def desk(
    url: str, conninfo: str, kind: str, pairs: list[tuple[str, str]], barrier: Any
) -> dict[str, Any]:
    """One desk: WARMUP dispatches, then, after the barrier, dispatch each (call, unit) pair in
    turn until SECONDS have passed."""
    if kind == "service":
        one, backend, close = _service_desk(url)
    else:
        one, backend, close = _raw_desk(conninfo, single=kind == "single")
    try:
        for number, unit in pairs[:WARMUP]:
            one(number, unit)
        barrier.wait()
        start = time.time()
        deadline = time.perf_counter() + SECONDS
        cpu0, server0 = time.process_time(), _cpu_of(backend)
        latencies = []
        for number, unit in pairs[WARMUP:]:
            t0 = time.perf_counter()
            one(number, unit)
            t1 = time.perf_counter()
            latencies.append(t1 - t0)
            if t1 >= deadline:
                break
        return {
            "start": start,
            "end": time.time(),
            "latencies": latencies,
            "client_cpu": time.process_time() - cpu0,
            "server_cpu": _cpu_of(backend) - server0,
        }
    finally:
        close()


def reset(url: str) -> list[str]:
    """Free every unit and cancel every open call; then one fresh pending call per bench unit."""
    engine = engine_for(url, pool_size=1)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE assignments SET cancelled_at = clock_timestamp()"
                    " WHERE cleared_at IS NULL AND cancelled_at IS NULL"
                )
            )
            conn.execute(
                text(
                    "UPDATE units SET status = 'AVAILABLE', status_since = now()"
                    " WHERE status <> 'AVAILABLE'"
                )
            )
            conn.execute(
                text(
                    "UPDATE calls SET status = 'CANCELLED', cancelled_at = clock_timestamp()"
                    " WHERE status NOT IN ('CLOSED', 'CANCELLED')"
                )
            )
        return add_pending_calls(engine, UNITS)
    finally:
        engine.dispose()


def run_desks(
    srv: BenchServer, url: str, desks: int, units: list[str], kind: str = "service"
) -> dict[str, float]:
    calls = reset(url)
    pairs = list(zip(calls, units, strict=True))
    barrier = MP.Barrier(desks)
    conninfo = srv.conninfo("dispatch")
    results = run_processes(
        desk, [(url, conninfo, kind, pairs[i::desks], barrier) for i in range(desks)]
    )
    latencies = [x for r in results for x in r["latencies"]]
    span = max(r["end"] for r in results) - min(r["start"] for r in results)
    count = len(latencies)
    return {
        "tps": count / span,
        "p50": ms(pct(latencies, 50)),
        "p99": ms(pct(latencies, 99)),
        "n": count,
        "client_cpu": ms(sum(r["client_cpu"] for r in results) / count),
        "server_cpu": ms(sum(r["server_cpu"] for r in results) / count),
    }


def run(srv: BenchServer) -> Report:
    url = srv.dispatch_database()
    engine = engine_for(url, pool_size=1)
    units = add_units(engine, UNITS)
    engine.dispose()
    pgbench_init(srv)

    report = Report("1. Dispatch throughput and latency (desks are processes)")
    rows = []
    measured: dict[int, tuple[dict[str, float], Any, Any]] = {}
    for desks in DESKS:
        ours = run_desks(srv, url, desks, units)
        tpcb = pgbench_run(srv, desks, PGBENCH_SECONDS)
        simple = pgbench_run(srv, desks, PGBENCH_SECONDS, select_only_branches=True)
        measured[desks] = (ours, tpcb, simple)
        rows.append(
            [
                desks,
                ours["tps"],
                ours["p50"],
                ours["p99"],
                tpcb.tps,
                tpcb.p50_ms,
                tpcb.p99_ms,
                ratio(ours["tps"], tpcb.tps),
                simple.tps,
                simple.p99_ms,
                ratio(ours["tps"], simple.tps),
            ]
        )
    report.table(
        [
            "desks",
            "dispatch tx/s",
            "p50 ms",
            "p99 ms",
            "TPC-B tps",
            "TPC-B p50",
            "TPC-B p99",
            "ours/TPC-B",
            "-N tps",
            "-N p99",
            "ours/-N",
        ],
        rows,
    )

    # Where the time goes at 4 desks: the service (its one statement, sent to the driver),
    # the step-by-step transaction's statements without SQLAlchemy, and one statement bare.
    anatomy = [("service (one statement, driver connection)", measured[4][0])]
    anatomy.append(
        ("step-by-step statements, bare psycopg", run_desks(srv, url, 4, units, "statements"))
    )
    anatomy.append(("one statement, bare psycopg", run_desks(srv, url, 4, units, "single")))
    report.table(
        [
            "4 desks",
            "tx/s",
            "p50 ms",
            "p99 ms",
            "desk CPU ms/tx",
            "backend CPU ms/tx",
            "vs service",
        ],
        [
            [
                name,
                r["tps"],
                r["p50"],
                r["p99"],
                # Two decimals: the desk's share is a tenth of a millisecond or two.
                fmt(r["client_cpu"], 2),
                fmt(r["server_cpu"], 2),
                ratio(r["tps"], anatomy[0][1]["tps"]),
            ]
            for name, r in anatomy
        ],
    )

    ours4, tpcb4, _ = measured[4]
    report.goal(
        "≥ 0.75× TPC-B-like at 4 desks",
        f"{ours4['tps'] / tpcb4.tps:.2f}× ({ours4['tps']:.0f} vs {tpcb4.tps:.0f} tx/s)",
        ours4["tps"] >= 0.75 * tpcb4.tps,
    )
    ours8, tpcb8, simple8 = measured[8]
    report.goal(
        "p99 at 8 desks ≤ TPC-B-like p99 at 8 clients",
        f"{ours8['p99']:.1f} ms vs {tpcb8.p99_ms:.1f} ms (-N: {simple8.p99_ms:.1f} ms)",
        ours8["p99"] <= tpcb8.p99_ms,
    )
    report.note(
        f"each row runs {SECONDS:.0f} s after a barrier; pgbench runs {PGBENCH_SECONDS} s per "
        "row with -j = -c; CPU from /proc (user + system) of the desk processes and their backends."
    )
    return report


if __name__ == "__main__":
    with throwaway_server() as server:
        print(run(server).render())
