"""8. Crew alerts: a dispatch committed → the alert's sender running, beside raw NOTIFY.

An alerter (`service.alerter.Alerter`, LISTEN on, its default two workers) runs in a process of
its own with a sender that notes the time it started: `bash` reading the alert's line and
appending `$EPOCHREALTIME` and the line to a file (one process, no other work). A writer process
dispatches one unit to one call through `DispatchService.dispatch` every INTERVAL seconds, noting
when each returned (the dispatch is one statement in autocommit: it has committed then). Both read
the same machine clock, so commit → sender started is one subtraction, matched by call number.

Reference, in the same run on the same server: raw NOTIFY with bare psycopg between two
processes, commit → receipt, at the same pace.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psycopg

from bench.common import (
    MP,
    BenchServer,
    Report,
    add_pending_calls,
    add_units,
    engine_for,
    ms,
    pct,
    ratio,
    run_tasks,
    service_for,
    throwaway_server,
)
from dispatch_tui.rules.commands import Dispatch, Once
from dispatch_tui.service.alerter import Alerter, SenderSettings

DISPATCHES = 300
INTERVAL = 0.03  # seconds between dispatches: 33 a second, far above any centre's rate
DRAIN = 10.0  # seconds the alerter is given to deliver the last ones
GOAL_P99_MS = 100.0
OPERATOR = "alice"


def alerter_side(url: str, log: str, ready: Any, stop: Any) -> dict[str, float]:
    """Deliver alerts until `stop`; returns the alerter process's CPU seconds."""
    engine = engine_for(url, pool_size=4)
    script = 'read -r line; printf "%s %s\\n" "$EPOCHREALTIME" "$line" >> "$0"'
    sender = SenderSettings(("bash", "-c", script, log))
    alerter = Alerter(engine, sender, listen_url=url)
    done = threading.Event()
    thread = threading.Thread(target=alerter.run, args=(done,))
    started = time.process_time()
    thread.start()
    time.sleep(1.0)  # listening
    ready.set()
    stop.wait()
    done.set()
    thread.join()
    engine.dispose()
    return {"cpu": time.process_time() - started}


def writer_side(
    url: str, units: list[str], calls: list[str], log: str, ready: Any, stop: Any
) -> dict[str, float]:
    """Dispatch each unit to its call, one every INTERVAL, then give the alerter DRAIN seconds
    at most to deliver the last; returns call → commit time."""
    engine, service = service_for(url, desk="bench-desk")
    committed: dict[str, float] = {}
    try:
        service.operator(OPERATOR)
        if not ready.wait(60):
            raise RuntimeError("the alerter never became ready")
        for unit, number in zip(units, calls, strict=True):
            order = Dispatch(number, (unit,))
            service.dispatch(OPERATOR, number, (unit,), once=Once.of(OPERATOR, order))
            committed[number] = time.time()
            time.sleep(INTERVAL)
        end = time.monotonic() + DRAIN
        while time.monotonic() < end and _count(log) < len(committed):
            time.sleep(0.05)
    finally:
        stop.set()
        engine.dispose()
    return committed


def raw_listener(conninfo: str, ready: Any, stop: Any) -> dict[int, float]:
    received: dict[int, float] = {}
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("LISTEN bench_reference")
        ready.set()
        while not stop.is_set():
            for notify in conn.notifies(timeout=0.25):
                received[int(notify.payload)] = time.time()
    return received


def raw_writer(conninfo: str, ready: Any, stop: Any) -> dict[int, float]:
    sent: dict[int, float] = {}
    try:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            if not ready.wait(60):
                raise RuntimeError("the reference listener never became ready")
            for k in range(DISPATCHES):
                conn.execute("SELECT pg_notify('bench_reference', %s)", (str(k),))
                sent[k] = time.time()
                time.sleep(INTERVAL)
        time.sleep(1.0)
        return sent
    finally:
        stop.set()


def _ours(url: str) -> tuple[list[float], int, float]:
    engine = engine_for(url, pool_size=1)
    units = add_units(engine, DISPATCHES)
    calls = add_pending_calls(engine, DISPATCHES)
    engine.dispose()
    with tempfile.TemporaryDirectory(prefix="dtui-bench-alerts-") as folder:
        log = str(Path(folder) / "sent.log")
        ready, stop = MP.Event(), MP.Event()
        alerter, committed = run_tasks(
            [
                (alerter_side, (url, log, ready, stop)),
                (writer_side, (url, units, calls, log, ready, stop)),
            ],
            timeout=600,
        )
        sent: dict[str, float] = {}
        for line in Path(log).read_text().splitlines():
            stamp, _, document = line.partition(" ")
            sent.setdefault(json.loads(document)["call"], float(stamp))
    delays = [sent[n] - at for n, at in committed.items() if n in sent]
    return delays, len(committed) - len(delays), alerter["cpu"]


def _count(path: str) -> int:
    try:
        with open(path, "rb") as f:
            return sum(1 for _ in f)
    except FileNotFoundError:
        return 0


def run(srv: BenchServer) -> Report:
    url = srv.dispatch_database()
    delays, lost, cpu = _ours(url)
    srv.create_database("reference")
    conninfo = srv.conninfo("reference")
    ready, stop = MP.Event(), MP.Event()
    received, sent = run_tasks(
        [(raw_listener, (conninfo, ready, stop)), (raw_writer, (conninfo, ready, stop))],
        timeout=600,
    )
    reference = [received[k] - at for k, at in sent.items() if k in received]

    report = Report("8. Crew alerts: dispatch committed → sender started")
    headers = ["", "n", "p50 ms", "p99 ms", "max ms", "p99 vs raw NOTIFY"]
    rows = [
        [
            "alert (dispatch → outbox → alerter → sender)",
            len(delays),
            ms(pct(delays, 50)),
            ms(pct(delays, 99)),
            ms(max(delays, default=float("nan"))),
            ratio(pct(delays, 99), pct(reference, 99)),
        ],
        [
            "raw NOTIFY (reference)",
            len(reference),
            ms(pct(reference, 50)),
            ms(pct(reference, 99)),
            ms(max(reference, default=float("nan"))),
            "1.00×",
        ],
    ]
    report.table(headers, rows)
    p99 = ms(pct(delays, 99))
    report.goal(
        f"alert p99 ≤ {GOAL_P99_MS:.0f} ms, none lost",
        f"{p99:.1f} ms, {lost} not delivered",
        p99 <= GOAL_P99_MS and lost == 0,
    )
    report.note(
        f"{DISPATCHES} dispatches, one every {INTERVAL * 1000:.0f} ms; the sender is one bash "
        "process per alert, its start time from $EPOCHREALTIME; the alerter process used "
        f"{cpu:.2f} s of CPU ({cpu / max(len(delays), 1) * 1000:.1f} ms an alert, starting its "
        "sender included)."
    )
    return report


if __name__ == "__main__":
    with throwaway_server() as server:
        print(run(server).render())
