"""12. Failover: a standby promoted → every desk LIVE again and reloaded, over several failovers.

A throwaway primary with the schema and the demo's reference data, and a hot standby
(`pg_basebackup -R`). `DESKS` listeners as desks run them (the project's `Listener`, in the
relay, with a desk's backoff of at most 1 s and a resync that reads everything) and as many bare
psycopg clients, all on one multi-host URL naming every server the run will have
(`target_session_attrs=read-write`). Each round: the primary is killed (SIGKILL), the standby
promoted (`pg_ctl promote -w`), and the time from the promotion asked for to each desk LIVE with
its reload done is noted; then a new standby is made from the new primary for the next round.

Reference: the bare clients, each retrying its connection every `BARE_RETRY` seconds (as fast as
a client can sensibly knock): promotion asked for → connected to the new primary.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
from psycopg.conninfo import make_conninfo

from bench.common import BenchServer, Report, ms, pct, ratio
from dispatch_tui.db.embedded import PORT, SUPERUSER, EmbeddedServer
from dispatch_tui.db.engine import make_engine, make_sessionmaker, upgrade
from dispatch_tui.db.listener import ConnectionState, Listener
from dispatch_tui.service import demo
from dispatch_tui.service.read_service import ReadService
from dispatch_tui.service.relay import Relay

DESKS = 20
ROUNDS = 3
BARE_RETRY = 0.05
LIMIT = 30.0  # seconds a round waits at most for every desk
GOAL_SECONDS = 5.0


class Desk:
    """A listener as a desk runs it; `back` is when it was LIVE and reloaded after `armed`."""

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url, pool_size=1)
        service = ReadService(make_sessionmaker(self.engine), desk="bench-failover")
        self.state: ConnectionState | None = None
        self.armed = False
        self.back: float | None = None

        def resync() -> None:
            service.snapshot()
            if self.armed and self.state is ConnectionState.LIVE and self.back is None:
                self.back = time.time()

        def state(value: ConnectionState) -> None:
            self.state = value

        self.listener = Listener(
            url,
            on_changes=lambda _batch: None,
            on_state=state,
            on_resync=resync,
            relay=Relay(service, lambda _change: None),
            max_backoff_seconds=1.0,
        )
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.listener.run, args=(self.stop,), daemon=True)


class Bare:
    """A bare client that reconnects as fast as it sensibly can; `back` as for a desk."""

    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo
        self.armed = False
        self.back: float | None = None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        conn: psycopg.Connection | None = None
        while not self.stop.is_set():
            try:
                if conn is None:
                    conn = psycopg.connect(self.conninfo, autocommit=True, connect_timeout=2)
                    if self.armed and self.back is None:
                        self.back = time.time()
                conn.execute("SELECT 1")
                self.stop.wait(BARE_RETRY)
            except psycopg.Error:
                if conn is not None:
                    conn.close()
                conn = None
                self.stop.wait(BARE_RETRY)
        if conn is not None:
            conn.close()


def run(srv: BenchServer) -> Report:
    del srv  # this benchmark makes its own servers: a primary, then a standby per round
    root = Path(tempfile.mkdtemp(prefix="dtui-bench-fo-", dir="/tmp"))
    root.chmod(0o711)  # the server's own user (as root) passes through to its data directory
    servers = [EmbeddedServer(root / f"s{i}") for i in range(ROUNDS + 1)]
    hosts = "&".join(f"host={s.socket_dir}:{PORT}" for s in servers)
    url = f"postgresql://{SUPERUSER}@/dispatch?{hosts}&target_session_attrs=read-write"
    conninfo = make_conninfo(
        "",
        host=",".join(str(s.socket_dir) for s in servers),
        port=",".join([str(PORT)] * len(servers)),
        user=SUPERUSER,
        dbname="dispatch",
        target_session_attrs="read-write",
    )
    started: list[EmbeddedServer] = []
    desks: list[Desk] = []
    bares: list[Bare] = []
    rounds: list[tuple[list[float], list[float]]] = []
    promote_took: list[float] = []
    try:
        primary = servers[0]
        primary.start()
        started.append(primary)
        engine = make_engine(primary.url(), pool_size=1)
        upgrade(engine)
        with make_sessionmaker(engine).begin() as s:
            demo._reference(s, None)
        engine.dispose()
        standby = primary.standby(servers[1].data_dir)
        started.append(standby)
        desks = [Desk(url) for _ in range(DESKS)]
        bares = [Bare(conninfo) for _ in range(DESKS)]
        for client in (*desks, *bares):
            client.thread.start()
        _until(lambda: all(d.state is ConnectionState.LIVE for d in desks), "desks LIVE")
        for n in range(1, ROUNDS + 1):
            # Armed before the kill: none can be back before the promotion (the URL takes only
            # a server that takes writes), and one quick to reconnect is not missed.
            for client in (*desks, *bares):
                client.armed, client.back = True, None
            primary.kill()
            promoted = time.time()  # the promotion asked for: the server takes writes soon after
            standby.promote()
            promote_took.append(time.time() - promoted)
            _until(lambda: all(c.back is not None for c in (*desks, *bares)), "every desk back")
            rounds.append(
                (
                    [d.back - promoted for d in desks if d.back is not None],
                    [b.back - promoted for b in bares if b.back is not None],
                )
            )
            primary = standby
            if n < ROUNDS:
                standby = primary.standby(servers[n + 1].data_dir)
                started.append(standby)
    finally:
        for client in (*desks, *bares):
            client.stop.set()
        for client in (*desks, *bares):
            client.thread.join(timeout=5)
        for desk in desks:
            desk.engine.dispose()
        for server in reversed(started):
            server.stop()  # (a killed one is not running: nothing to do)
        shutil.rmtree(root, ignore_errors=True)

    report = Report(
        f"12. Failover: standby promoted → every desk LIVE and reloaded ({DESKS} desks)"
    )
    rows = []
    for n, (ours, bare) in enumerate(rounds, 1):
        rows.append(
            [
                n,
                ms(promote_took[n - 1]),
                ms(pct(ours, 50)),
                ms(max(ours)),
                ms(pct(bare, 50)),
                ms(max(bare)),
                ratio(max(ours), max(bare)),
            ]
        )
    report.table(
        [
            "failover",
            "pg_ctl promote -w ms",
            "desks p50 ms",
            "last desk ms",
            f"bare reconnect (every {BARE_RETRY * 1000:.0f} ms) p50 ms",
            "last bare ms",
            "last desk / last bare",
        ],
        rows,
    )
    worst = max(max(ours) for ours, _ in rounds)
    report.goal(
        f"every desk LIVE and reloaded within {GOAL_SECONDS:.0f} s of the promotion asked for",
        f"worst {worst:.2f} s over {len(rounds)} failovers",
        worst <= GOAL_SECONDS,
    )
    report.note(
        "a desk retries with a doubling backoff of at most 1 s (so it does not hammer a server"
        " that is coming back), and reloads everything before it says LIVE: that, not the"
        " connection, is most of the gap to the bare client"
    )
    return report


def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + LIMIT
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.01)
