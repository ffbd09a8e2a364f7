"""10. Fan-out: one change reaching 1, 10, 50, 100 and 200 desks.

Desks are simulated as the desk runs its feed (no screen): each is the project's own `Listener`
on a connection of its own, with an engine of its own that loads everything once at start (as a
desk does on connecting) and closes its kept connections after `IDLE_RELEASE` unused (as a desk
does after 30 s). They run as threads spread over `PROCESSES` processes. A writer sets hospital
MERCY's free beds to 1, 2, 3, ... through the service, `CHANGES` times at `RATE` changes a
second; each desk notes when it has the new count.

Three ways, each at every desk count, on one throwaway server (max_connections raised to 600):

* **relay** (ours): a relay (`dispatch-tui relay`, its own process) reads each change once and
  notifies the rows; the desks apply them without reading.
* **refetch** (before the relay): every desk reads the changed rows itself.
* **bare NOTIFY** (the reference): bare psycopg listeners, one connection each, and a writer
  sending `NOTIFY` with a short payload at the same rate; no reads, nothing applied.

Measured: server CPU per change (CPU time of every server process, from /proc, over the
run, divided by the changes), server connections per desk once the desks sat idle for longer
than `IDLE_RELEASE`, and commit → last desk holding the change (p50, p99 over the changes).
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import psycopg

from bench.common import MP, BenchServer, Report, ms, pct, ratio, run_tasks, service_for

DESK_COUNTS = (1, 10, 50, 100, 200)
PROCESSES = 4
CHANGES = 60
RATE = 5.0  # changes a second
IDLE_RELEASE = 2.0  # seconds; a desk's is 30
HOSPITAL = "MERCY"
BARE_CHANNEL = "bench_bare"
DRAIN_CPU = 2.0  # seconds after the last change still counted: the desks catching up


def _cpu_ns(pgdata: Path) -> int:
    """CPU time (nanoseconds, user and system) used so far by the server: the postmaster and
    its children (`/proc/PID/schedstat`, finer than the clock ticks of `stat`)."""
    postmaster = int((pgdata / "postmaster.pid").read_text().split()[0])
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            if int(entry) == postmaster or ppid == postmaster:
                total += int(Path(f"/proc/{entry}/schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
    return total


# -- the desks -------------------------------------------------------------------------------


def desks_side(
    way: str, url: str, conninfo: str, count: int, go: Any, ready: Any, stop: Any
) -> dict[int, float]:
    """Run `count` desks of one way (once `go`: the relay is in place) until `stop`; for each
    bed count, when the last of them had it."""
    from dispatch_tui.db.engine import make_engine, make_sessionmaker
    from dispatch_tui.db.listener import Listener, touched
    from dispatch_tui.service.read_service import ReadService
    from dispatch_tui.service.relay import Relay

    lock = threading.Lock()
    seen: dict[int, list[float]] = {}
    loaded = threading.Semaphore(0)

    def saw(beds: int | None) -> None:
        if beds is not None:
            with lock:
                seen.setdefault(beds, []).append(time.time())

    def beds_in(hospitals: Any) -> int | None:
        return next((h.beds_available for h in hospitals if h.code == HOSPITAL), None)

    def bare_desk(stop_desk: threading.Event) -> None:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f"LISTEN {BARE_CHANNEL}")
            loaded.release()
            while not stop_desk.is_set():
                for n in conn.notifies(timeout=0.25, stop_after=1):
                    saw(int(n.payload))

    def app_desk(stop_desk: threading.Event) -> None:
        engine = make_engine(url, pool_size=1, release_idle_seconds=IDLE_RELEASE)
        service = ReadService(make_sessionmaker(engine), desk="bench-desk")
        first = threading.Event()

        def resync() -> None:
            service.snapshot()  # what a desk loads on (re)connecting
            if not first.is_set():
                first.set()
                loaded.release()

        def changed(batch: Any) -> None:  # the refetch way: read what the change names
            calls, units, hospitals = touched(batch)
            snapshot = service.changed(call_ids=calls, unit_ids=units, hospital_ids=hospitals)
            saw(beds_in(snapshot.hospitals))

        relay = Relay(service, lambda change: saw(beds_in(change.snapshot.hospitals)))
        feed = Listener(
            url,
            on_changes=changed,
            on_state=lambda _state: None,
            on_resync=resync,
            relay=relay if way == "relay" else None,
        )
        try:
            feed.run(stop_desk)
        finally:
            engine.dispose()

    go.wait()
    stop_desks = threading.Event()
    target = bare_desk if way == "bare" else app_desk
    threads = [
        threading.Thread(target=target, args=(stop_desks,), daemon=True) for _ in range(count)
    ]
    for thread in threads:
        thread.start()
    for _ in range(count):
        loaded.acquire()
    ready.release()
    stop.wait()
    stop_desks.set()
    for thread in threads:
        thread.join(timeout=5)
    with lock:
        return {beds: max(times) for beds, times in seen.items() if len(times) == count}


def relay_side(url: str, go: Any, ready: Any, stop: Any) -> None:
    """The relay, as `dispatch-tui relay` runs it."""
    from dispatch_tui.db.engine import make_engine, make_sessionmaker
    from dispatch_tui.db.listener import Listener, RelayRole
    from dispatch_tui.service.read_service import ReadService
    from dispatch_tui.service.relay import Relay

    engine = make_engine(url, pool_size=1)
    feed = Listener(
        url,
        on_changes=lambda _batch: None,
        on_state=lambda _state: None,
        on_resync=lambda: None,
        relay=Relay(ReadService(make_sessionmaker(engine), desk="bench-relay"), lambda _c: None),
    )
    done = threading.Event()
    thread = threading.Thread(target=feed.run, args=(done,), daemon=True)
    thread.start()
    while feed.role is not RelayRole.RELAY:
        time.sleep(0.01)
    go.set()
    ready.release()
    stop.wait()
    done.set()
    thread.join(timeout=5)
    engine.dispose()


# -- one run ---------------------------------------------------------------------------------


def _connections(conninfo: str, database: str) -> int:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND backend_type ="
            " 'client backend' AND pid <> pg_backend_pid()",
            (database,),
        ).fetchone()
    return int(row[0]) if row else 0


def one_run(srv: BenchServer, way: str, desks: int, url: str, database: str) -> dict[str, float]:
    conninfo = srv.conninfo(database)
    go, ready, stop = MP.Event(), MP.Semaphore(0), MP.Event()
    per = [desks // PROCESSES + (1 if i < desks % PROCESSES else 0) for i in range(PROCESSES)]
    tasks: list[Any] = []
    if way == "relay":
        tasks.append((relay_side, (url, go, ready, stop)))
    else:
        go.set()
    tasks += [(desks_side, (way, url, conninfo, n, go, ready, stop)) for n in per if n]
    tasks.append(
        (writer_side, (way, url, conninfo, database, srv.server.pgdata, len(tasks), ready, stop))
    )
    *results, (connections, commits, cpu_ns) = run_tasks(tasks, timeout=600)
    last: dict[int, float] = {}
    for result in results:
        if isinstance(result, dict):
            for beds, at in result.items():
                last[beds] = max(last.get(beds, 0.0), at)
    delays = [last[b] - at for b, at in commits.items() if b in last]
    return {
        "cpu_ms": cpu_ns / 1e6 / CHANGES,
        "per_desk": connections / desks,
        "p50": ms(pct(delays, 50)),
        "p99": ms(pct(delays, 99)),
        "lost": CHANGES - len(delays),
    }


def writer_side(
    way: str,
    url: str,
    conninfo: str,
    database: str,
    pgdata: Path,
    others: int,
    ready: Any,
    stop: Any,
) -> tuple[int, dict[int, float], int]:
    """Once every other task is ready and the desks sat idle: count the connections, make the
    changes, stop the others. Its own process: a thread of the parent would be forked into them."""
    try:
        for _ in range(others):
            ready.acquire()
        time.sleep(IDLE_RELEASE + 3.0)  # idle: the desks close what they keep
        connections = _connections(conninfo, database) - (1 if way == "relay" else 0)
        commits, cpu_ns = _write(way, url, conninfo, pgdata)
    finally:
        stop.set()
    return connections, commits, cpu_ns


def _write(way: str, url: str, conninfo: str, pgdata: Path) -> tuple[dict[int, float], int]:
    """Make the changes at RATE: each one's commit time, and the server's CPU time (ns) over
    the changes and the desks' catching up."""
    commits: dict[int, float] = {}
    before = _cpu_ns(pgdata)
    if way == "bare":
        with psycopg.connect(conninfo, autocommit=True) as conn:
            for beds in range(1, CHANGES + 1):
                started = time.monotonic()
                conn.execute("SELECT pg_notify(%s, %s)", (BARE_CHANNEL, str(beds)))
                commits[beds] = time.time()
                time.sleep(max(0.0, 1.0 / RATE - (time.monotonic() - started)))
    else:
        engine, service = service_for(url, desk="bench-writer")
        try:
            for beds in range(1, CHANGES + 1):
                started = time.monotonic()
                service.hospital_status("grace", HOSPITAL, beds=beds)
                commits[beds] = time.time()
                time.sleep(max(0.0, 1.0 / RATE - (time.monotonic() - started)))
        finally:
            engine.dispose()
    time.sleep(DRAIN_CPU)  # the last change reaches the desks
    return commits, _cpu_ns(pgdata) - before


def run(srv: BenchServer) -> Report:
    with psycopg.connect(srv.conninfo("postgres"), autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET max_connections = 600")
    srv.server.stop()
    srv.server.start()
    url = srv.dispatch_database()
    srv.create_database("reference")
    rows = []
    results: dict[tuple[str, int], dict[str, float]] = {}
    for desks in DESK_COUNTS:
        for way, database in (
            ("bare", "reference"),
            ("relay", "dispatch"),
            ("refetch", "dispatch"),
        ):
            results[(way, desks)] = one_run(srv, way, desks, url, database)
        bare, ours, before = (results[(w, desks)] for w in ("bare", "relay", "refetch"))
        rows.append(
            [
                desks,
                ours["cpu_ms"],
                before["cpu_ms"],
                bare["cpu_ms"],
                ratio(ours["cpu_ms"], bare["cpu_ms"]),
                ours["per_desk"],
                before["per_desk"],
                ours["p50"],
                ours["p99"],
                before["p99"],
                bare["p50"],
                bare["p99"],
                ratio(ours["p99"], bare["p99"]),
                f"{ours['lost']:.0f} / {before['lost']:.0f} / {bare['lost']:.0f}",
            ]
        )
    report = Report(
        "10. Fan-out: a change reaching N desks (relay vs each desk reading vs bare NOTIFY)"
    )
    report.table(
        [
            "desks",
            "server CPU/change relay ms",
            "refetch ms",
            "bare ms",
            "relay/bare",
            "conns/idle desk relay",
            "refetch",
            "commit→last p50 relay ms",
            "p99 relay ms",
            "p99 refetch ms",
            "bare p50 ms",
            "bare p99 ms",
            "p99 relay/bare",
            "not seen by every desk in time: relay / refetch / bare",
        ],
        rows,
    )
    at200 = results[("relay", 200)], results[("bare", 200)]
    at100 = results[("relay", 100)], results[("bare", 100)]
    report.goal(
        "server CPU per change at 200 desks ≤ 3× bare NOTIFY",
        ratio(at200[0]["cpu_ms"], at200[1]["cpu_ms"]),
        at200[0]["cpu_ms"] <= 3 * at200[1]["cpu_ms"],
    )
    report.goal(
        "one server connection per idle desk",
        f"{at200[0]['per_desk']:.2f}",
        at200[0]["per_desk"] <= 1.0,
    )
    report.goal(
        "commit → last desk p99 at 100 desks ≤ 2× bare NOTIFY",
        ratio(at100[0]["p99"], at100[1]["p99"]),
        at100[0]["p99"] <= 2 * at100[1]["p99"],
    )
    report.note(
        f"{CHANGES} changes at {RATE:g}/s per run; desks in {PROCESSES} processes; the change is a"
        " hospital's beds (its row, about 300 bytes, relayed); a dispatch relays a call and a"
        " unit, about 2 kB"
    )
    return report
