"""A commit that waits for a synchronous standby that is gone: bounded, outcome unknown.

A throwaway server (the embedded server's binaries, never the shared service) told to wait for a
synchronous standby that does not exist (`synchronous_standby_names = 'gone'`), as a promoted
standby that kept the setting is. Without a bound, every write there hangs for ever holding its
row locks. With it, each write ends within the bound, says the change was saved on the primary
but unconfirmed (outcome unknown, exit 7), and leaves no lock behind: the next write to the same
unit meets the same stalled replication, never "another desk is holding that record".
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from dispatch_tui.cli.main import main
from dispatch_tui.db.embedded import EmbeddedServer
from dispatch_tui.db.engine import make_engine, make_sessionmaker
from dispatch_tui.rules.errors import UNCONFIRMED, OutcomeUnknown
from dispatch_tui.service import commit_bound
from dispatch_tui.service.dispatch_service import DispatchService
from tests.helpers import new_call
from tests.test_standby import primary_with_schema, servers


def _replication(engine: Engine, names: str) -> None:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ALTER SYSTEM SET synchronous_standby_names = " + repr(names)))
        conn.execute(text("SELECT pg_reload_conf()"))


@pytest.fixture(scope="module")
def stalled() -> Iterator[EmbeddedServer]:
    """A primary whose every commit waits for a synchronous standby named `gone`."""
    with servers("dtui-syncgone-") as (root, started):
        started.append(primary := primary_with_schema(root / "primary"))
        engine = make_engine(primary.url(), pool_size=1)
        try:
            _replication(engine, "gone")
        finally:
            engine.dispose()
        yield primary


@pytest.fixture(autouse=True)
def short_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(commit_bound, "COMMIT_SECONDS", 1.0)


def _unit_row(engine: Engine, code: str) -> tuple[str, int]:
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT u.status, count(a.id) FROM units u"
                " LEFT JOIN assignments a ON a.unit_id = u.id AND a.cancelled_at IS NULL"
                " AND a.cleared_at IS NULL WHERE u.code = :code GROUP BY u.status"
            ),
            {"code": code},
        ).one()
    return str(row[0]), int(row[1])


def test_every_kind_of_write_ends_within_the_bound_as_saved_but_unconfirmed(
    stalled: EmbeddedServer,
) -> None:
    engine = make_engine(stalled.url(), pool_size=2)
    try:
        world = DispatchService(make_sessionmaker(engine), desk="test")
        # A transaction of several statements (intake): saved, said unconfirmed.
        with pytest.raises(OutcomeUnknown) as intake:
            new_call(world)
        assert str(intake.value) == UNCONFIRMED
        with engine.connect() as conn:
            number = conn.execute(text("SELECT number FROM calls ORDER BY id DESC")).scalar_one()
        # A one-statement write (the dispatch): saved, said unconfirmed.
        with pytest.raises(OutcomeUnknown) as dispatch:
            world.dispatch("alice", number, ["M1"])
        assert str(dispatch.value) == UNCONFIRMED
        assert _unit_row(engine, "M1") == ("EN_ROUTE", 1)
        # Its row locks were released: the unit's next change is not refused as held by
        # another desk; it too is saved and unconfirmed.
        with pytest.raises(OutcomeUnknown) as status:
            world.unit_status("alice", "M1", "ON_SCENE")
        assert str(status.value) == UNCONFIRMED
        assert _unit_row(engine, "M1") == ("ON_SCENE", 1)
    finally:
        engine.dispose()


def test_the_cli_answers_in_one_line_with_exit_7(
    stalled: EmbeddedServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DISPATCH_DATABASE_URL", stalled.url())
    monkeypatch.setenv("DISPATCH_LOG_FILE", str(tmp_path / "dispatch-tui.log"))
    capsys.readouterr()
    code = main(["--as", "alice", "unit", "status", "B2", "oos", "--reason", "test"])
    err = capsys.readouterr().err
    assert code == 7, err
    assert err.startswith(f"error: {UNCONFIRMED}") and err.count("\n") == 1, err
    engine = make_engine(stalled.url(), pool_size=1)
    try:
        assert _unit_row(engine, "B2")[0] == "OUT_OF_SERVICE"
    finally:
        engine.dispose()


def test_writes_are_plain_again_once_replication_is_released(stalled: EmbeddedServer) -> None:
    engine = make_engine(stalled.url(), pool_size=2)
    try:
        _replication(engine, "")
        world = DispatchService(make_sessionmaker(engine), desk="test")
        number = new_call(world)
        assert world.dispatch("alice", number, ["M4"]).units == ("M4",)
    finally:
        _replication(engine, "gone")
        engine.dispose()
