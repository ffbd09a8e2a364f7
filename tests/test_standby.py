"""A board on a hot standby: it reads, it cannot listen there, it says how old its data is.

A throwaway primary (the embedded server's binaries) and a standby made from it with
`pg_basebackup -R`, both on sockets of their own: never the shared service. The board on the
standby polls (a standby takes no LISTEN), shows the primary's changes as they are replayed, and
its status line says `STANDBY · data as of N s ago`; a write sent to the standby is refused in
one line, exit 6.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import text

from dispatch_tui.cli.main import main
from dispatch_tui.db.embedded import EmbeddedServer
from dispatch_tui.db.engine import make_engine, make_sessionmaker, upgrade
from dispatch_tui.db.listener import ConnectionState
from dispatch_tui.service import demo
from dispatch_tui.service.dispatch_service import DispatchService
from dispatch_tui.service.read_service import ReadService
from dispatch_tui.widgets.status_line import StatusLine
from tests.helpers import new_call


@contextmanager
def servers(prefix: str) -> Iterator[tuple[Path, list[EmbeddedServer]]]:
    """A folder for throwaway servers, and a list: each server put in it is stopped at the end
    (the last first), and the folder removed."""
    root = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    root.chmod(0o711)  # the server's own user (as root) passes through to its data directory
    started: list[EmbeddedServer] = []
    try:
        yield root, started
    finally:
        for server in reversed(started):
            server.stop()
        shutil.rmtree(root, ignore_errors=True)


def primary_with_schema(data_dir: Path) -> EmbeddedServer:
    """A started server with the schema and the demo's reference data (units, hospitals...)."""
    primary = EmbeddedServer(data_dir)
    primary.start()
    engine = make_engine(primary.url(), pool_size=1)
    try:
        upgrade(engine)
        with make_sessionmaker(engine).begin() as s:
            demo._reference(s, None)
    finally:
        engine.dispose()
    return primary


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[EmbeddedServer, EmbeddedServer]]:
    with servers("dtui-standby-") as (root, started):
        started.append(primary := primary_with_schema(root / "primary"))
        started.append(standby := primary.standby(root / "standby"))
        yield primary, standby


def test_a_board_on_the_standby_says_how_old_its_data_is(
    cluster: tuple[EmbeddedServer, EmbeddedServer],
) -> None:
    primary, standby = cluster
    writer_engine = make_engine(primary.url(), pool_size=1)
    board_engine = make_engine(standby.url(), pool_size=1, read_only=True)
    try:
        world = DispatchService(make_sessionmaker(writer_engine), desk="test")
        board = ReadService(make_sessionmaker(board_engine), desk="board")
        assert world.snapshot().standby_age is None  # the primary
        number = new_call(world)
        deadline = time.monotonic() + 30
        seen = board.snapshot()
        while number not in {c.number for c in seen.calls} and time.monotonic() < deadline:
            time.sleep(0.1)
            seen = board.snapshot()
        assert number in {c.number for c in seen.calls}  # replayed, and read there
        assert seen.standby_age is not None and 0 <= seen.standby_age < 30
        line = StatusLine("wall-1", "board", "standby/dispatch")
        line.standby_age = seen.standby_age
        assert f"STANDBY · data as of {int(seen.standby_age)} s ago" in line.text().plain
        line.standby_age = 95
        assert "STANDBY · data as of 95 s ago — LATE" in line.text().plain
    finally:
        writer_engine.dispose()
        board_engine.dispose()


def test_a_write_sent_to_the_standby_is_refused_in_one_line(
    cluster: tuple[EmbeddedServer, EmbeddedServer],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    primary, standby = cluster
    monkeypatch.setenv("DISPATCH_DATABASE_URL", standby.url())
    monkeypatch.setenv("DISPATCH_LOG_FILE", str(tmp_path / "dispatch-tui.log"))
    capsys.readouterr()
    assert main(["--as", "alice", "unit", "status", "M3", "oos", "--reason", "test"]) == 6
    err = capsys.readouterr().err
    assert err.startswith("error: this server is read-only") and err.count("\n") == 1, err
    engine = make_engine(primary.url(), pool_size=1)
    try:
        with engine.connect() as conn:
            status = conn.execute(text("SELECT status FROM units WHERE code = 'M3'")).scalar_one()
        assert status == "AVAILABLE"
    finally:
        engine.dispose()


def test_a_listener_on_the_standby_polls(cluster: tuple[EmbeddedServer, EmbeddedServer]) -> None:
    """A standby takes no LISTEN (notifications are not replicated): the board polls there."""
    from tests.test_listener import Recorder, running, wait_for

    _, standby = cluster
    rec = Recorder()
    with running(standby.url(), rec, poll_seconds=0.2):
        wait_for(lambda: rec.resyncs >= 3, "a resync every poll", timeout=10)
        assert ConnectionState.POLLING in rec.states and ConnectionState.LIVE not in rec.states
