"""The embedded PostgreSQL server, against the real binaries: no mocks.

Each test gets its own cluster in a short directory under /tmp: pytest's tmp_path can be too long
for a Unix socket path (~107 bytes).
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import create_engine, make_url, text

from dispatch_tui.db.embedded import (
    ROOT_DATA_DIR,
    SERVER_USER,
    EmbeddedServer,
    EmbeddedServerError,
    default_data_dir,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _short_tmp_dir() -> Path:
    # /tmp on purpose: the socket path <dir>/run/.s.PGSQL.5432 must stay short.
    return Path(tempfile.mkdtemp(prefix="dtui-", dir="/tmp"))


@pytest.fixture
def server() -> Iterator[EmbeddedServer]:
    data_dir = _short_tmp_dir()
    srv = EmbeddedServer(data_dir)
    try:
        yield srv
    finally:
        try:
            srv.stop()
        finally:
            # Last resort if stop() failed: no server may outlive its (deleted) directory.
            leftover = srv.status().pid
            if leftover is not None:
                os.kill(leftover, signal.SIGKILL)
            shutil.rmtree(data_dir, ignore_errors=True)


def _connect(
    srv: EmbeddedServer, database: str = "dispatch"
) -> psycopg.Connection[tuple[object, ...]]:
    """Raw psycopg takes the same URL once the SQLAlchemy driver suffix is dropped."""
    url = srv.url(database).replace("postgresql+psycopg://", "postgresql://", 1)
    return psycopg.connect(url, autocommit=True, connect_timeout=5)


def _python(code: str, *args: str, **kwargs: object) -> subprocess.Popen[str]:
    """Run `code` in a fresh interpreter that can import this project."""
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")])),
    )
    return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-c", code, *args], env=env, text=True, **kwargs
    )


def test_start_from_nothing_serves_the_dispatch_database(server: EmbeddedServer) -> None:
    assert not server.status().running
    assert server.status().pid is None

    url = server.ensure_running()

    status = server.status()
    assert status.running
    assert isinstance(status.pid, int)
    assert status.data_dir == server.data_dir
    assert status.socket_dir == server.socket_dir == server.data_dir / "run"
    assert (
        url == server.url() == f"postgresql+psycopg://postgres@/dispatch?host={server.socket_dir}"
    )
    assert (server.pgdata / "PG_VERSION").exists()
    assert server.log_path.exists()

    with _connect(server) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        assert conn.execute("SELECT current_database()").fetchone() == ("dispatch",)
    with _connect(server, "postgres") as conn:
        row = conn.execute("SELECT count(*) FROM pg_database WHERE datname = 'dispatch'").fetchone()
        assert row == (1,)

    # The URL is for SQLAlchemy: the socket directory travels as the `host` query parameter.
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar_one() == 1
    finally:
        engine.dispose()


def test_start_is_idempotent(server: EmbeddedServer) -> None:
    server.start()
    first = server.status().pid
    assert first is not None

    began = time.monotonic()
    server.start()
    assert server.ensure_running() == server.url()
    assert time.monotonic() - began < 2, "an already running server is not started again"
    assert server.status().pid == first


def test_socket_only_private_and_not_root(server: EmbeddedServer) -> None:
    server.start()

    assert stat.S_IMODE(server.socket_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(server.pgdata.stat().st_mode) == 0o700
    with _connect(server) as conn:
        assert conn.execute("SHOW listen_addresses").fetchone() == ("",)
        assert conn.execute("SHOW unix_socket_permissions").fetchone() == ("0700",)

    pid = server.status().pid
    assert pid is not None
    server_uid = Path(f"/proc/{pid}").stat().st_uid
    if os.geteuid() == 0:
        # PostgreSQL refuses root: it runs as the unprivileged server user, which owns the files.
        import pwd

        expected = pwd.getpwnam(SERVER_USER).pw_uid
        assert server_uid == expected != 0
        for path in (server.data_dir, server.pgdata, server.socket_dir):
            assert path.stat().st_uid == expected
    else:
        assert server_uid == os.geteuid()


def test_server_survives_the_process_that_started_it(server: EmbeddedServer) -> None:
    code = (
        "import sys; from pathlib import Path\n"
        "from dispatch_tui.db.embedded import EmbeddedServer\n"
        "srv = EmbeddedServer(Path(sys.argv[1])); srv.start(); print(srv.status().pid)\n"
    )
    starter = _python(code, str(server.data_dir), stdout=subprocess.PIPE)
    out, _ = starter.communicate(timeout=60)
    assert starter.returncode == 0
    started_pid = int(out.strip())

    status = server.status()
    assert status.running
    assert status.pid == started_pid
    with _connect(server) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_ctrl_c_in_the_starting_terminal_does_not_reach_the_server(server: EmbeddedServer) -> None:
    # The starter leads its own process group, like a shell's foreground job; Ctrl-C is SIGINT
    # to that whole group (and SIGINT means "fast shutdown" to postgres).
    code = (
        "import sys, time; from pathlib import Path\n"
        "from dispatch_tui.db.embedded import EmbeddedServer\n"
        "srv = EmbeddedServer(Path(sys.argv[1])); srv.start()\n"
        "print(srv.status().pid, flush=True); time.sleep(60)\n"
    )
    starter = _python(
        code,
        str(server.data_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        assert starter.stdout is not None
        pid = int(starter.stdout.readline().strip())
        assert os.getpgid(pid) != starter.pid
        os.killpg(starter.pid, signal.SIGINT)
        assert starter.wait(timeout=10) != 0
    finally:
        if starter.poll() is None:
            starter.kill()
            starter.wait()

    assert server.status().pid == pid
    with _connect(server) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_stop_and_restart_keep_the_data(server: EmbeddedServer) -> None:
    assert server.stop() is False, "nothing to stop before the first start"
    server.start()
    with _connect(server) as conn:
        conn.execute("CREATE TABLE kept (n int)")
        conn.execute("INSERT INTO kept VALUES (42)")

    assert server.stop() is True
    status = server.status()
    assert not status.running
    assert status.pid is None
    assert not (server.pgdata / "postmaster.pid").exists()
    assert server.stop() is False

    server.start()
    with _connect(server) as conn:
        assert conn.execute("SELECT n FROM kept").fetchone() == (42,)


def test_stale_postmaster_pid_after_kill_9_recovers(server: EmbeddedServer) -> None:
    server.start()
    with _connect(server) as conn:
        conn.execute("CREATE TABLE survived (n int)")
        conn.execute("INSERT INTO survived VALUES (7)")
    old_pid = server.status().pid
    assert old_pid is not None

    os.kill(old_pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while server.status().running:
        assert time.monotonic() < deadline, "status() still reports a killed server"
        time.sleep(0.05)
    # The pid file survives a kill -9 (and its PID may linger as an unreaped zombie).
    assert (server.pgdata / "postmaster.pid").exists()
    assert server.status().pid is None

    server.start()
    status = server.status()
    assert status.running
    assert status.pid not in (None, old_pid)
    with _connect(server) as conn:
        assert conn.execute("SELECT n FROM survived").fetchone() == (7,)


def test_two_processes_starting_at_once_share_one_server(server: EmbeddedServer) -> None:
    # Both wait for the same instant, so they reach start() together despite interpreter startup.
    code = (
        "import sys, time; from pathlib import Path\n"
        "from dispatch_tui.db.embedded import EmbeddedServer\n"
        "srv = EmbeddedServer(Path(sys.argv[1]))\n"
        "time.sleep(max(0.0, float(sys.argv[2]) - time.time()))\n"
        "srv.start(); print(srv.status().pid)\n"
    )
    at = str(time.time() + 1.0)
    starters = [
        _python(code, str(server.data_dir), at, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    try:
        results = [p.communicate(timeout=90) for p in starters]
    finally:
        for p in starters:
            if p.poll() is None:
                p.kill()
                p.wait()
    for proc, (_, err) in zip(starters, results, strict=True):
        assert proc.returncode == 0, err
    pids = {int(out.strip()) for out, _ in results}
    assert pids == {server.status().pid}
    with _connect(server) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_url_puts_the_socket_dir_in_the_host_parameter() -> None:
    srv = EmbeddedServer(Path("/srv/dispatch data"))
    url = make_url(srv.url("other"))
    assert url.drivername == "postgresql+psycopg"
    assert url.username == "postgres"
    assert url.host is None
    assert url.database == "other"
    assert url.query["host"] == "/srv/dispatch data/run"
    # libpq reads the same URL (minus the driver suffix) identically.
    info = psycopg.conninfo.conninfo_to_dict(
        srv.url("other").replace("postgresql+psycopg://", "postgresql://", 1)
    )
    assert info["host"] == "/srv/dispatch data/run"
    assert info["dbname"] == "other"


def test_too_long_socket_path_is_refused_with_advice() -> None:
    srv = EmbeddedServer(Path("/tmp") / ("d" * 100))  # noqa: S108
    with pytest.raises(EmbeddedServerError, match="DISPATCH_DATA_DIR"):
        srv.start()
    assert not srv.data_dir.exists(), "nothing is created before the check"


def test_default_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISPATCH_DATA_DIR", "/opt/desk")
    assert default_data_dir() == Path("/opt/desk")
    monkeypatch.delenv("DISPATCH_DATA_DIR")
    if os.geteuid() == 0:
        assert default_data_dir() == ROOT_DATA_DIR
    else:
        import platformdirs

        assert default_data_dir() == platformdirs.user_data_path("dispatch-tui")
