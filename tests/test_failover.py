"""Failover: the primary killed (SIGKILL), its standby promoted; nothing acknowledged is lost.

Throwaway servers from the embedded binaries (a primary, and a standby made with
`pg_basebackup -R`), never the shared service. Every part connects with one multi-host URL
(`target_session_attrs=read-write`): the listener is LIVE again on the promoted standby, a write
sent in the gap is refused "nothing was changed" (exit 6), never replayed; and with synchronous
replication, every dispatch acknowledged before the kill is on the new primary, none twice.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from dispatch_tui.cli.main import main
from dispatch_tui.db.embedded import PORT, EmbeddedServer
from dispatch_tui.db.engine import make_engine, make_sessionmaker
from dispatch_tui.db.listener import ConnectionState
from dispatch_tui.rules.commands import Dispatch, Once
from dispatch_tui.rules.errors import DispatchError
from dispatch_tui.rules.validation import CallIntake
from dispatch_tui.service.dispatch_service import DispatchService
from tests.invariants import violations
from tests.test_listener import Recorder, running, wait_for
from tests.test_standby import primary_with_schema, servers

CALLS = 150  # one unit each, dispatched in turn until the primary dies


def _url(*servers: EmbeddedServer) -> str:
    hosts = "&".join(f"host={s.socket_dir}:{PORT}" for s in servers)
    return f"postgresql://postgres@/dispatch?{hosts}&target_session_attrs=read-write"


def _no_synchronous_standby(server: EmbeddedServer) -> None:
    engine = make_engine(server.url(), pool_size=1)
    try:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ALTER SYSTEM RESET synchronous_standby_names"))
            conn.execute(text("SELECT pg_reload_conf()"))
    finally:
        engine.dispose()


@pytest.fixture
def cluster() -> Iterator[tuple[EmbeddedServer, EmbeddedServer]]:
    """A primary with the schema, the demo reference data and CALLS pending calls and units,
    and its synchronous standby."""
    with servers("dtui-failover-") as (root, started):
        started.append(primary := primary_with_schema(root / "primary"))
        engine = make_engine(primary.url(), pool_size=1)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO units (code, capability, station_id, lat, lon, position_at)"
                    " SELECT 'F' || g, 'ALS', (SELECT min(id) FROM stations), 40.0, -83.0, now()"
                    " FROM generate_series(1, :n) g"
                ),
                {"n": CALLS},
            )
        world = DispatchService(make_sessionmaker(engine))
        for _ in range(CALLS):
            world.create_call(
                "alice", CallIntake(nature="Drill", location="1 Quarry Rd", priority=3)
            )
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ALTER SYSTEM SET synchronous_standby_names = '*'"))
            conn.execute(text("SELECT pg_reload_conf()"))
        started.append(standby := primary.standby(root / "standby"))
        state = None
        deadline = time.monotonic() + 30
        while state != "sync" and time.monotonic() < deadline:  # streaming, and synchronous
            time.sleep(0.1)
            with engine.connect() as conn:
                state = conn.execute(
                    text("SELECT sync_state FROM pg_stat_replication")
                ).scalar_one_or_none()
        assert state == "sync"
        engine.dispose()
        yield primary, standby


def test_the_promoted_standby_takes_over_and_no_acknowledged_dispatch_is_lost(
    cluster: tuple[EmbeddedServer, EmbeddedServer],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    primary, standby = cluster
    url = _url(primary, standby)
    engine = make_engine(url, pool_size=2)
    service = DispatchService(make_sessionmaker(engine))
    with engine.connect() as conn:
        numbers = list(conn.execute(text("SELECT number FROM calls ORDER BY id")).scalars())
    rec = Recorder()
    acknowledged: list[str] = []
    refused: list[str] = []
    with running(url, rec, max_backoff_seconds=0.5):
        wait_for(rec.live, "LIVE", timeout=15)

        def dispatching() -> None:
            for k, number in enumerate(numbers, start=1):
                unit = f"F{k}"
                try:
                    order = Dispatch(number, (unit,))
                    service.dispatch("alice", number, (unit,), once=Once.of("alice", order))
                except DispatchError as err:  # the gap: refused, or in doubt
                    refused.append(f"{number}: {err.message}")
                    if len(refused) >= 3:
                        return
                    continue
                acknowledged.append(number)

        writer = threading.Thread(target=dispatching)
        writer.start()
        while len(acknowledged) < 20 and writer.is_alive():
            time.sleep(0.01)
        primary.kill()  # mid-loop
        writer.join(timeout=120)
        assert refused, "the writer never noticed the primary was gone"
        # A write in the gap: nothing to take it (the standby is still read-only).
        monkeypatch.setenv("DISPATCH_DATABASE_URL", url)
        monkeypatch.setenv("DISPATCH_LOG_FILE", str(tmp_path / "dispatch-tui.log"))
        capsys.readouterr()
        assert main(["--as", "alice", "unit", "status", "M2", "oos", "--reason", "gap"]) == 6
        assert "nothing was changed" in capsys.readouterr().err
        # Counted before the promotion: the listener may be back (and reloaded) at once.
        promoted = rec.resyncs
        standby.promote()
        # The new primary has no standby of its own yet: it must not wait for one (it kept
        # the old primary's synchronous_standby_names; every commit would wait for ever).
        _no_synchronous_standby(standby)
        wait_for(
            lambda: rec.resyncs > promoted and rec.state is ConnectionState.LIVE,
            "LIVE on the promoted standby, and reloaded",
            timeout=30,
        )
    new_primary = make_engine(standby.url(), pool_size=1)
    try:
        with new_primary.connect() as conn:
            on_it = set(
                conn.execute(
                    text(
                        "SELECT c.number FROM assignments a JOIN calls c ON c.id = a.call_id"
                        " WHERE a.cleared_at IS NULL AND a.cancelled_at IS NULL"
                    )
                ).scalars()
            )
            twice = conn.execute(
                text("SELECT count(*) - count(DISTINCT call_id) FROM assignments")
            ).scalar_one()
        assert set(acknowledged) <= on_it, sorted(set(acknowledged) - on_it)  # none lost
        assert twice == 0  # none twice
        assert violations(new_primary) == ""
        # The gap's write was not replayed behind anyone's back.
        with new_primary.connect() as conn:
            m2 = conn.execute(text("SELECT status FROM units WHERE code = 'M2'")).scalar_one()
        assert m2 == "AVAILABLE"
        # And the service writes on the new primary through the same URL.
        service.unit_status("alice", "M2", "OUT_OF_SERVICE", reason="after the failover")
    finally:
        new_primary.dispose()
        engine.dispose()
