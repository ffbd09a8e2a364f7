"""7. Moving units: divert and queue promotion at 8 desks, against dispatch in the same run.

Eight desk processes, each with its own engine, each working on its own units and calls (no two
desks lock the same unit or call), all released together by a barrier, for a fixed time:

- **divert**: `DispatchService.divert` of a unit en route (dispatched before the barrier) to the
  desk's next pending call; the call it leaves goes back to pending. Each desk turns its few units
  in turn, so every divert is timed and nothing else runs between them.
- **queue promotion**: a unit on scene on one call with the desk's next pending call lined up
  (`queue`) is cleared (`unit_status` AVAILABLE), which dispatches it to the lined-up call in the
  same transaction. Only the clear is timed; the two writes that set the next one up (on scene,
  then queue) are not, but they run between the timed ones, so the server is just as busy.
- **dispatch** (the reference): `DispatchService.dispatch` of distinct units to distinct calls, as
  benchmark 1 does (`bench/dispatch.py`'s service desk).

Each timed operation's server CPU is its desk's backend's (`/proc/PID/schedstat`, read just
before and after it): on 2 cores, with 8 desks in a closed loop, the p99 follows the CPU an
operation costs, and this column says how much of that is the server's.

Every write goes under a request id of its own (`Once`), as a desk sends it. Each kind runs
ROUNDS times, the kinds in turn (dispatch, divert, promotion, dispatch, ...), so a change in the
machine's load falls on all three alike; the figures pool a kind's rounds. Every desk freezes its
heap (`gc.freeze`) after its warm-up, before the barrier (see `desk`).
"""

from __future__ import annotations

import gc
import time
from pathlib import Path
from typing import Any

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
    ratio,
    run_processes,
    service_for,
    throwaway_server,
)
from dispatch_tui.rules.commands import Dispatch, Divert, Once, Queue, SetUnitStatus
from dispatch_tui.service import transactions
from dispatch_tui.service.dispatch_service import DispatchService

DESKS = 8
SECONDS = 3.0  # per round, after the barrier
ROUNDS = 3  # of each kind, in turn
# Dispatch takes a fresh unit per dispatch: enough for 2,500 dispatches/s for SECONDS.
DISPATCH_UNITS = 8000
# Divert and promotion move a desk's few units from call to call, one fresh call per move.
MOVING_UNITS = 4  # per desk
MOVE_CALLS = 6000  # per round, shared out among the desks; a desk that runs out stops early
# Moves (or dispatches) each desk makes before the barrier, left out of the figures: a desk's
# first statements pay one-off costs (compiling, preparing, planning) a desk in service has paid.
WARMUP = 10
KINDS = ("dispatch", "divert", "promotion")
OPERATOR = "alice"


# -- one desk ------------------------------------------------------------------------------------


def _dispatch(service: DispatchService, number: str, unit: str) -> None:
    units = (unit,)
    service.dispatch(OPERATOR, number, units, once=Once.of(OPERATOR, Dispatch(number, units)))


def _status(service: DispatchService, unit: str, status: str) -> str:
    once = Once.of(OPERATOR, SetUnitStatus(unit, status))
    return service.unit_status(OPERATOR, unit, status, once=once).call_number or ""


def _server_ns(backend: int) -> int:
    """CPU time (ns, user and system) used so far by PostgreSQL backend `backend`."""
    return int(Path(f"/proc/{backend}/schedstat").read_text().split()[0])


class _Desk:
    """One desk's work of one kind: `prepare` before the barrier, then `step` again and again;
    a step returns (wall seconds, desk CPU seconds and its backend's CPU seconds of its timed
    part, transactions it committed), or None when the desk has run out of calls or units."""

    def __init__(self, service: DispatchService, kind: str, units: list[str], calls: list[str]):
        self.service, self.kind, self.units, self.calls = service, kind, units, calls
        self.done = 0  # steps taken
        self.next_call = 0
        # The desk's one server connection for its writes (db.engine.DriverConnections keeps
        # it): its backend's CPU is read from /proc just outside each timed part.
        row = transactions.one_statement(service.statements, b"SELECT pg_backend_pid()", {})
        assert row is not None
        self.backend = int(row[0])

    def _call(self) -> str | None:
        if self.next_call >= len(self.calls):
            return None
        number = self.calls[self.next_call]
        self.next_call += 1
        return number

    def prepare(self) -> None:
        if self.kind == "dispatch":
            return
        # Every moving unit en route to a call of its own, as a dispatcher would have sent it.
        for unit in self.units:
            number = self._call()
            assert number is not None
            _dispatch(self.service, number, unit)

    def step(self) -> tuple[float, float, float, int] | None:
        if self.kind == "dispatch":
            if self.done >= len(self.calls):
                return None
            number, unit = self.calls[self.done], self.units[self.done]
            s0 = _server_ns(self.backend)
            t0, c0 = time.perf_counter(), time.process_time()
            _dispatch(self.service, number, unit)
            timed, cpu, txs = time.perf_counter() - t0, time.process_time() - c0, 1
        else:
            unit = self.units[self.done % len(self.units)]
            next_call = self._call()
            if next_call is None:
                return None
            number = next_call
            if self.kind == "divert":
                once = Once.of(OPERATOR, Divert(unit, number, "bench"))
                s0 = _server_ns(self.backend)
                t0, c0 = time.perf_counter(), time.process_time()
                moved = self.service.divert(OPERATOR, unit, number, "bench", once=once)
                timed, cpu, txs = time.perf_counter() - t0, time.process_time() - c0, 1
                if moved.call_number != number:
                    raise RuntimeError(f"divert of {unit} to {number} answered {moved}")
            else:
                _status(self.service, unit, "ON_SCENE")
                queued = Queue(unit, number)
                self.service.queue(OPERATOR, unit, number, once=Once.of(OPERATOR, queued))
                s0 = _server_ns(self.backend)
                t0, c0 = time.perf_counter(), time.process_time()
                now_on = _status(self.service, unit, "AVAILABLE")  # the promotion
                timed, cpu, txs = time.perf_counter() - t0, time.process_time() - c0, 3
                if now_on != number:
                    raise RuntimeError(f"{unit} cleared but went to {now_on!r}, not {number}")
        server = (_server_ns(self.backend) - s0) / 1e9
        self.done += 1
        return timed, cpu, server, txs


def desk(url: str, kind: str, units: list[str], calls: list[str], barrier: Any) -> dict[str, Any]:
    """One desk: prepare, WARMUP steps, then after the barrier steps until SECONDS have passed."""
    engine, service = service_for(url, desk="bench-desk")
    try:
        service.operator(OPERATOR)  # connect and warm the caches before the start
        work = _Desk(service, kind, units, calls)
        work.prepare()
        for _ in range(WARMUP):
            if work.step() is None:
                raise RuntimeError(f"a {kind} desk ran out of work while warming up")
        # The objects made so far (the app, SQLAlchemy, the warmed caches: all forked from the
        # parent or made while warming up) are set aside from the collector. Otherwise each
        # promotion desk, which allocates the most (three writes a step), ran one full collection
        # of that whole heap about a second into its round (65 ms of CPU), all eight at once
        # after the barrier: 400 ms on 2 cores, the round's p99, and nothing a promotion costs.
        gc.collect()
        gc.freeze()
        barrier.wait()
        start = time.time()
        deadline = time.perf_counter() + SECONDS
        latencies: list[float] = []
        cpu = server = 0.0
        committed = 0
        ran_out = False
        while time.perf_counter() < deadline:
            taken = work.step()
            if taken is None:
                ran_out = True
                break
            latencies.append(taken[0])
            cpu += taken[1]
            server += taken[2]
            committed += taken[3]
        return {
            "start": start,
            "end": time.time(),
            "latencies": latencies,
            "cpu": cpu,
            "server": server,
            "transactions": committed,
            "ran_out": ran_out,
        }
    finally:
        engine.dispose()


# -- a round ---------------------------------------------------------------------------------------


def reset(url: str, calls: int) -> list[str]:
    """Free every unit, end every lined-up call, cancel every open call; then `calls` fresh
    pending calls, returned in creation order."""
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
                    "UPDATE queued SET ended_at = clock_timestamp(), end_reason = 'bench reset'"
                    " WHERE ended_at IS NULL"
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
        return add_pending_calls(engine, calls)
    finally:
        engine.dispose()


def run_round(url: str, kind: str, units: list[str]) -> list[dict[str, Any]]:
    barrier = MP.Barrier(DESKS)
    if kind == "dispatch":
        calls = reset(url, DISPATCH_UNITS)
        work = [(units[i::DESKS], calls[i::DESKS]) for i in range(DESKS)]
    else:
        calls = reset(url, MOVE_CALLS)
        work = [
            (units[i * MOVING_UNITS : (i + 1) * MOVING_UNITS], calls[i::DESKS])
            for i in range(DESKS)
        ]
    return run_processes(desk, [(url, kind, u, c, barrier) for u, c in work])


def summary(rounds: list[list[dict[str, Any]]]) -> dict[str, float]:
    """A kind's rounds pooled: its timed operations and transactions over the rounds' spans."""
    latencies = [x for results in rounds for r in results for x in r["latencies"]]
    span = sum(
        max(r["end"] for r in results) - min(r["start"] for r in results) for results in rounds
    )
    return {
        "n": len(latencies),
        "ops": len(latencies) / span,
        "tps": sum(r["transactions"] for results in rounds for r in results) / span,
        "p50": ms(pct(latencies, 50)),
        "p99": ms(pct(latencies, 99)),
        "max": ms(max(latencies, default=float("nan"))),
        "cpu": ms(sum(r["cpu"] for results in rounds for r in results) / len(latencies)),
        "server": ms(sum(r["server"] for results in rounds for r in results) / len(latencies)),
        "ran_out": sum(r["ran_out"] for results in rounds for r in results),
    }


def run(srv: BenchServer) -> Report:
    url = srv.dispatch_database()
    engine = engine_for(url, pool_size=1)
    units = add_units(engine, DISPATCH_UNITS)
    engine.dispose()

    measured: dict[str, list[list[dict[str, Any]]]] = {kind: [] for kind in KINDS}
    for _ in range(ROUNDS):
        for kind in KINDS:
            measured[kind].append(run_round(url, kind, units))
    figures = {kind: summary(rounds) for kind, rounds in measured.items()}
    reference = figures["dispatch"]

    report = Report(f"7. Moving units: divert and queue promotion at {DESKS} desks (processes)")
    names = {
        "dispatch": "dispatch (reference)",
        "divert": "divert (en route → another pending call)",
        "promotion": "queue promotion (clear on scene → lined-up call)",
    }
    report.table(
        [
            f"{DESKS} desks",
            "timed ops",
            "ops/s",
            "tx/s",
            "p50 ms",
            "p99 ms",
            "max ms",
            "desk CPU ms/op",
            "server CPU ms/op",
            "server CPU vs dispatch",
            "p99 vs dispatch",
        ],
        [
            [
                names[kind],
                int(f["n"]),
                f["ops"],
                f["tps"],
                f["p50"],
                f["p99"],
                f["max"],
                fmt(f["cpu"], 2),
                fmt(f["server"], 2),
                ratio(f["server"], reference["server"]),
                ratio(f["p99"], reference["p99"]),
            ]
            for kind, f in figures.items()
        ],
    )
    for kind, label in (("divert", "divert"), ("promotion", "queue promotion")):
        f = figures[kind]
        report.goal(
            f"{label} p99 ≤ dispatch p99 at {DESKS} desks",
            f"{f['p99']:.1f} ms vs {reference['p99']:.1f} ms ({ratio(f['p99'], reference['p99'])})",
            f["p99"] <= reference["p99"],
        )
    short = {kind: int(f["ran_out"]) for kind, f in figures.items() if f["ran_out"]}
    if short:
        report.note(
            "desks that ran out of work before the time was up: "
            + ", ".join(f"{kind} {n}" for kind, n in short.items())
        )
    report.note(
        f"{ROUNDS} rounds of {SECONDS:.0f} s per kind, the kinds in turn, {WARMUP} operations per "
        "desk before each barrier left out, then the desk's heap frozen (`gc.freeze`); ops/s counts the timed operations, tx/s every "
        "transaction the desks committed (a promotion's desk also sets its unit on scene and "
        "lines up its next call: 3 per promotion); desk CPU is the desk process's own (user + "
        "system) during the timed part, server CPU its backend's (`/proc/PID/schedstat`, read "
        "just before and after the timed part); the rest of a timed operation is commit, the "
        "other server processes' work and waiting for a core."
    )
    return report


if __name__ == "__main__":
    with throwaway_server() as server:
        print(run(server).render())
