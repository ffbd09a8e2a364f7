"""What every benchmark shares: a throwaway server, data loaders, statistics and the printed table.

Each benchmark starts its own embedded PostgreSQL in a fresh `/tmp/dtui-bench-*` directory and
removes it at the end, so runs are comparable and never touch a shared service. Only the Unix
socket is used (the embedded server opens no TCP port), by our code and by `pgbench`/`psql` alike.
"""

from __future__ import annotations

import multiprocessing
import os
import platform
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import Engine, event, text
from sqlalchemy.orm import Session

from dispatch_tui.db.embedded import SUPERUSER, EmbeddedServer, postgres_bin_dir
from dispatch_tui.db.engine import make_engine, make_sessionmaker, upgrade
from dispatch_tui.service import demo
from dispatch_tui.service.dispatch_service import DispatchService

# fork, not spawn: a spawned child re-imports SQLAlchemy and the app (~0.4 s of CPU each), which
# on a 2-core machine would eat the time budget. Parents dispose their engines before forking, so
# no child ever shares a parent's connection.
MP = multiprocessing.get_context("fork")


# -- the server --------------------------------------------------------------------------------


class BenchServer:
    """A throwaway embedded PostgreSQL reached over its Unix socket."""

    def __init__(self, server: EmbeddedServer) -> None:
        self.server = server

    @property
    def socket_dir(self) -> str:
        return str(self.server.socket_dir)

    def url(self, database: str) -> str:
        """SQLAlchemy URL of `database` (what the app itself is given)."""
        return self.server.url(database)

    def conninfo(self, database: str) -> str:
        """libpq connection string of `database`, for raw psycopg references."""
        return psycopg.conninfo.make_conninfo(
            "", host=self.socket_dir, port=5432, user=SUPERUSER, dbname=database
        )

    def create_database(self, name: str) -> None:
        with psycopg.connect(self.conninfo("postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

    def dispatch_database(self, name: str = "dispatch") -> str:
        """A database at the schema's head with the demo reference data; returns its URL."""
        if name != "dispatch":  # the server made "dispatch" itself when it started
            self.create_database(name)
        url = self.url(name)
        engine = make_engine(url)
        try:
            upgrade(engine)
            with make_sessionmaker(engine).begin() as s:
                demo._reference(s, None)
        finally:
            engine.dispose()
        return url

    def version(self) -> str:
        with psycopg.connect(self.conninfo("postgres")) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        return str(row[0]) if row else "?"

    def tool(self, name: str, *args: str, timeout: float = 120) -> str:
        """Run a bundled client binary (pgbench, psql) against this server; return its output.

        Clients may run as root: only the server refuses root, and root can reach the socket.
        """
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        cmd = [str(postgres_bin_dir() / name), "-h", self.socket_dir, "-p", "5432"]
        cmd += ["-U", SUPERUSER, *args]
        proc = subprocess.run(
            cmd, capture_output=True, text=True, env=env, timeout=timeout, check=False
        )
        if proc.returncode != 0:
            raise RuntimeError(f"{name} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
        return proc.stdout + proc.stderr


@contextmanager
def throwaway_server() -> Iterator[BenchServer]:
    data_dir = Path(tempfile.mkdtemp(prefix="dtui-bench-", dir="/tmp"))
    server = EmbeddedServer(data_dir)
    try:
        server.start()
        yield BenchServer(server)
    finally:
        try:
            server.stop()
        finally:
            shutil.rmtree(data_dir, ignore_errors=True)


# -- pgbench -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PgbenchResult:
    tps: float
    p50_ms: float
    p99_ms: float


def pgbench_init(srv: BenchServer, database: str = "pgbench", scale: int = 1) -> None:
    srv.create_database(database)
    srv.tool("pgbench", "-i", "-q", "-s", str(scale), database)


def pgbench_run(
    srv: BenchServer, clients: int, seconds: int, *, select_only_branches: bool = False
) -> PgbenchResult:
    """One pgbench run; `select_only_branches` is `-N` (skip the teller and branch updates).

    `-l` logs every transaction's latency, so p50/p99 come from the same definition as ours.
    """
    log_dir = Path(tempfile.mkdtemp(prefix="dtui-bench-pgb-", dir="/tmp"))
    try:
        args = ["-c", str(clients), "-j", str(clients), "-T", str(seconds), "-n", "-l"]
        args += ["--log-prefix", str(log_dir / "tx")]
        if select_only_branches:
            args.append("-N")
        out = srv.tool("pgbench", *args, "pgbench", timeout=seconds + 60)
        found = re.search(r"tps = ([0-9.]+)", out)
        if found is None:
            raise RuntimeError(f"no tps in pgbench output:\n{out}")
        latencies: list[float] = []
        for path in log_dir.iterdir():
            for line in path.read_text().splitlines():
                parts = line.split()
                if len(parts) >= 3:
                    latencies.append(int(parts[2]) / 1e6)  # microseconds
        return PgbenchResult(
            tps=float(found.group(1)),
            p50_ms=ms(pct(latencies, 50)),
            p99_ms=ms(pct(latencies, 99)),
        )
    finally:
        shutil.rmtree(log_dir, ignore_errors=True)


# -- data --------------------------------------------------------------------------------------


def engine_for(url: str, pool_size: int = 5) -> Engine:
    return make_engine(url, pool_size=pool_size, application_name="dispatch-tui bench")


def service_for(url: str, desk: str = "bench") -> tuple[Engine, DispatchService]:
    engine = engine_for(url)
    return engine, DispatchService(make_sessionmaker(engine), desk=desk)


def commit_clock(service: DispatchService) -> list[float]:
    """Wall-clock times (time.time) at which each transaction of `service`'s sessions committed.

    `after_commit` runs as soon as PostgreSQL acknowledged the COMMIT, before the service builds
    its return value and closes the session: the closest the client can see to the commit. (A
    dispatch is one statement in autocommit, run on the driver: it has committed when
    `dispatch` returns, and its caller stamps that itself.)
    """
    stamps: list[float] = []

    @event.listens_for(service.sessions, "after_commit")
    def _stamp(session: Session) -> None:
        stamps.append(time.time())

    return stamps


def add_units(engine: Engine, count: int, prefix: str = "U", capability: str = "ALS") -> list[str]:
    """`count` available units PREFIX1..PREFIXn spread over the demo stations, with positions."""
    with engine.begin() as conn:
        codes = conn.execute(
            text("""
                INSERT INTO units (code, capability, station_id, lat, lon, position_at)
                SELECT :prefix || g, :capability, st.id,
                       st.lat + (g % 17) * 0.001, st.lon - (g % 13) * 0.001, now()
                FROM generate_series(1, :count) AS g
                JOIN (SELECT id, lat, lon, row_number() OVER (ORDER BY id) - 1 AS k
                      FROM stations) AS st ON st.k = g % (SELECT count(*) FROM stations)
                ORDER BY g
                RETURNING code
            """),
            {"prefix": prefix, "capability": capability, "count": count},
        ).scalars()
        return list(codes)


def add_pending_calls(
    engine: Engine, count: int, tag: str = "bench", priorities: int = 1
) -> list[str]:
    """`count` pending calls with positions, P1 (or, with `priorities` = 4, P2, P3, P4, P1, ...
    in turn); returns their numbers in creation order."""
    with engine.begin() as conn:
        rows = conn.execute(
            text("""
                INSERT INTO calls (location_text, lat, lon, nature, priority, created_by_id)
                SELECT :tag || ' street ' || g, 40.0 + (g % 50) * 0.001, -83.0 + (g % 40) * 0.001,
                       'Chest pain', 1 + g % :priorities,
                       (SELECT id FROM staff WHERE username = 'alice')
                FROM generate_series(1, :count) AS g
                ORDER BY g
                RETURNING number
            """),
            {"tag": tag, "count": count, "priorities": priorities},
        ).scalars()
        return list(rows)


# A day of a busy urban service is ~1,500-2,000 calls: 100k closed calls then span ~60 days.
HISTORY_DAYS = 60.0

HISTORY_SQL = """
CREATE TEMP TABLE hist ON COMMIT DROP AS
SELECT g,
       received,
       received + d1 AS notified,
       received + d1 + d2 AS en_route,
       received + d1 + d2 + d3 AS on_scene,
       CASE WHEN transport THEN received + d1 + d2 + d3 + d4 END AS transporting,
       CASE WHEN transport THEN received + d1 + d2 + d3 + d4 + d5 END AS at_destination,
       received + d1 + d2 + d3 + d4 + d5 + d6 AS cleared,
       transport,
       (g % 4) + 1 AS priority,
       unit_ids[1 + (g % cardinality(unit_ids))] AS unit_id,
       hospital_ids[1 + (g % cardinality(hospital_ids))] AS hospital_id
FROM (
    SELECT g,
           now() - interval '10 minutes' - random() * :days * interval '1 day' AS received,
           (15 + random() * 90) * interval '1 second' AS d1,
           (20 + random() * 70) * interval '1 second' AS d2,
           (180 + random() * 600) * interval '1 second' AS d3,
           (600 + random() * 900) * interval '1 second' AS d4,
           (600 + random() * 1200) * interval '1 second' AS d5,
           (300 + random() * 1800) * interval '1 second' AS d6,
           random() < 0.7 AS transport,
           (SELECT array_agg(id ORDER BY id) FROM units) AS unit_ids,
           (SELECT array_agg(id ORDER BY id) FROM hospitals) AS hospital_ids
    FROM generate_series(1, :n) AS g
) AS draws;

INSERT INTO calls (number, received_at, location_text, lat, lon, nature, priority, status,
                   first_dispatched_at, closed_at, disposition, destination_hospital_id,
                   created_by_id, dispatched_by_id)
SELECT 'H-' || g, received, 'history street ' || g, 40.0 + (g % 90) * 0.001,
       -83.0 + (g % 70) * 0.001, 'History call', priority, 'CLOSED', notified, cleared,
       'all units cleared', CASE WHEN transport THEN hospital_id END,
       (SELECT id FROM staff WHERE username = 'alice'), (SELECT id FROM staff WHERE username = 'bob')
FROM hist;

INSERT INTO assignments (call_id, unit_id, dispatcher_id, hospital_id, notified_at, en_route_at,
                         on_scene_at, transporting_at, at_destination_at, cleared_at)
SELECT c.id, h.unit_id, c.dispatched_by_id, CASE WHEN h.transport THEN h.hospital_id END,
       h.notified, h.en_route, h.on_scene, h.transporting, h.at_destination, h.cleared
FROM hist h JOIN calls c ON c.number = 'H-' || h.g;
"""


def add_history(srv: BenchServer, database: str, count: int, days: float = HISTORY_DAYS) -> None:
    """`count` closed calls, each with one cleared assignment with every NEMSIS time, over the
    last `days` days; then VACUUM ANALYZE, as autovacuum would have done on a live database.

    Triggers are off while loading (session_replication_role = replica): the history builds up
    over weeks, one small transaction at a time, not as 200k notifications in one commit.
    """
    engine = engine_for(srv.url(database), pool_size=1)
    try:
        with engine.begin() as conn:
            conn.execute(text("SET LOCAL session_replication_role = replica"))
            conn.execute(text("SELECT setseed(0.42)"))  # the same history on every run
            for statement in HISTORY_SQL.split(";\n"):
                if statement.strip():
                    conn.execute(text(statement), {"days": days, "n": count})
    finally:
        engine.dispose()
    vacuum_analyze(srv, database)


def vacuum_analyze(srv: BenchServer, database: str) -> None:
    with psycopg.connect(srv.conninfo(database), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


# -- processes ---------------------------------------------------------------------------------


def run_processes(
    target: Callable[..., Any], arguments: Sequence[tuple[Any, ...]], timeout: float = 120
) -> list[Any]:
    """Run `target(*args)` in one process per argument tuple; return their results in order."""
    return run_tasks([(target, args) for args in arguments], timeout=timeout)


def run_tasks(
    tasks: Sequence[tuple[Callable[..., Any], tuple[Any, ...]]], timeout: float = 120
) -> list[Any]:
    """Run each `target(*args)` in a process of its own; return their results in task order.

    A child that raises, dies or hangs fails the benchmark instead of leaving it waiting.
    """
    queue: Any = MP.Queue()
    procs = [
        MP.Process(target=_child, args=(target, i, queue, *args), daemon=True)
        for i, (target, args) in enumerate(tasks)
    ]
    for p in procs:
        p.start()
    results: dict[int, Any] = {}
    deadline = time.monotonic() + timeout
    try:
        while len(results) < len(procs):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RuntimeError(f"{len(procs) - len(results)} benchmark processes hung")
            try:
                index, ok, value = queue.get(timeout=min(remaining, 1.0))
            except Exception:  # queue.Empty: check whether a child died without a word
                dead = [p for i, p in enumerate(procs) if i not in results and not p.is_alive()]
                if dead and queue.empty():
                    time.sleep(0.2)  # its last message may still be in the pipe
                    if queue.empty():
                        raise RuntimeError("a benchmark process died") from None
                continue
            if not ok:
                raise RuntimeError(f"benchmark process {index} failed:\n{value}")
            results[index] = value
    finally:
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.terminate()
                p.join(timeout=5)
    return [results[i] for i in range(len(procs))]


def _child(target: Callable[..., Any], index: int, queue: Any, *args: Any) -> None:
    import traceback

    try:
        queue.put((index, True, target(*args)))
    except BaseException:
        queue.put((index, False, traceback.format_exc()))


# -- statistics and output ---------------------------------------------------------------------


def pct(values: Sequence[float], q: float) -> float:
    """The q-th percentile (linear interpolation between closest ranks); NaN when empty."""
    if not values:
        return float("nan")
    if len(values) == 1:
        return float(values[0])
    return statistics.quantiles(values, n=1000, method="inclusive")[int(q * 10) - 1]


def ms(seconds: float) -> float:
    return seconds * 1000.0


def fmt(value: float | int | str | None, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return f"{value:,}"
    if value != value:  # NaN
        return "–"
    return f"{value:,.{digits}f}"


def ratio(ours: float, reference: float) -> str:
    if not reference or reference != reference or ours != ours:
        return "–"
    return f"{ours / reference:.2f}×"


@dataclass
class Report:
    """One benchmark's printed result: tables, then its goals with met / MISSED."""

    title: str
    blocks: list[str] = field(default_factory=list)
    goals: list[tuple[str, str, bool]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        cells = [[fmt(c) for c in row] for row in rows]
        widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
        lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"]
        lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
        for row in cells:
            padded = (
                c.rjust(w) if i else c.ljust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
            lines.append("| " + " | ".join(padded) + " |")
        self.blocks.append("\n".join(lines))

    def goal(self, description: str, measured: str, met: bool) -> None:
        self.goals.append((description, measured, met))

    def note(self, line: str) -> None:
        self.notes.append(line)

    def render(self) -> str:
        out = [f"### {self.title}", ""]
        for block in self.blocks:
            out += [block, ""]
        for description, measured, met in self.goals:
            out.append(f"- goal {description}: {measured} — {'met' if met else 'MISSED'}")
        out += [f"- {n}" for n in self.notes]
        return "\n".join(out).rstrip() + "\n"


def machine() -> dict[str, str]:
    """nproc, CPU model, memory, Python: what the figures depend on."""
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "memory": mem,
        "python": platform.python_version(),
        "kernel": platform.release(),
    }
