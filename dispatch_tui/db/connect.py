"""Open the dispatch database a command needs: the shared server, or the embedded one.

Every command that touches data comes through here, so every one of them starts the embedded
server when needed and refuses to work on a schema that is not the one this version expects.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import OperationalError

from dispatch_tui.db.embedded import EmbeddedServer, EmbeddedServerError
from dispatch_tui.db.engine import make_engine, normalise_url, pooler_of, schema_state
from dispatch_tui.rules.errors import Forbidden, InvalidInput, Unavailable


@dataclass(frozen=True, slots=True)
class Database:
    engine: Engine
    label: str  # what the status line shows: "embedded" or the host
    embedded: bool


def _hosts(url: URL) -> str:
    """The server(s) a URL names, for the status line: `db1:5432,db2:5432` for a cluster."""
    listed = url.query.get("host")
    if listed:
        hosts = [listed] if isinstance(listed, str) else list(listed)
        if len(hosts) == 1 and hosts[0].startswith("/"):
            return "local socket"
        return ",".join(hosts)
    return url.host or "local socket"


def open_database(
    url: str | None,
    data_dir: Path,
    *,
    check_schema: bool = True,
    application_name: str = "dispatch-tui",
    read_only: bool = False,
    release_idle_seconds: float | None = None,
) -> Database:
    """The database a command works on (the embedded server when `url` is empty), its schema
    checked. `release_idle_seconds`: see `make_engine` (a desk's, which mostly listens)."""
    if url:
        try:
            parsed = normalise_url(url)
            pooler_of(parsed)  # a word it does not know is refused here, in one line
        except Exception as err:  # sqlalchemy raises several kinds for a malformed URL
            raise InvalidInput(
                f"DISPATCH_DATABASE_URL / --db is not a PostgreSQL URL ({err})"
            ) from None
        engine = make_engine(
            parsed,
            application_name=application_name,
            read_only=read_only,
            release_idle_seconds=release_idle_seconds,
        )
        label = f"{_hosts(parsed)}/{parsed.database}"
        embedded = False
    else:
        try:
            engine = make_engine(
                EmbeddedServer(data_dir).ensure_running(),
                application_name=application_name,
                read_only=read_only,
                release_idle_seconds=release_idle_seconds,
            )
        except EmbeddedServerError as err:
            raise Unavailable(f"the embedded database could not start: {err}") from None
        label = "embedded"
        embedded = True
    db = Database(engine, label, embedded)
    _opened.append(engine)
    if check_schema:
        require_current_schema(db)
    if read_only:
        require_read_only(db)
    return db


def require_read_only(db: Database) -> None:
    """Refuse to go on unless a transaction of this engine really is read-only (a board): it
    must never be able to write, whatever sits between it and the server."""
    try:
        with db.engine.connect() as conn:
            setting = conn.execute(text("SHOW transaction_read_only")).scalar_one()
    except OperationalError:
        raise Unavailable(f"cannot reach the dispatch database at {db.label}") from None
    if setting != "on":
        raise Forbidden(
            "this session could write (transaction_read_only is off; a pooler may have "
            "dropped its settings): the board does not run on it"
        )


def require_current_schema(db: Database) -> None:
    try:
        state = schema_state(db.engine)
    except OperationalError as err:
        raise Unavailable(
            f"cannot reach the dispatch database at {db.label}: {_first_line(err)}; "
            "nothing was changed"
        ) from None
    if state.current is None:
        raise Unavailable(
            "the dispatch database is empty; run `dispatch-tui db upgrade` (or `demo seed`)"
        )
    if not state.is_current:
        raise Unavailable(
            f"the database schema is at {state.current}, this version needs {state.head}; "
            "run `dispatch-tui db upgrade`"
        )


def _first_line(err: Exception) -> str:
    text = str(getattr(err, "orig", None) or err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def login_identity(engine: Engine) -> tuple[str, bool]:
    """Who the database says we are (`session_user`), and whether that login holds the rights
    of the schema's owner (a superuser does; so does a managed server's admin login that ran
    the migrations). Such a login could switch the audit log's triggers off, so it acts for
    the operator `--as` names, as the audit trigger (migration 0004) lets it; any other login
    is the operator itself."""
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT session_user, pg_has_role(session_user, c.relowner, 'USAGE')"
                " FROM pg_class c WHERE c.oid = 'audit_log'::regclass"
            )
        ).one()
    return str(row[0]), bool(row[1])


# Engines opened by this process's commands, so a command can close what it opened.
_opened: list[Engine] = []


def close_databases() -> None:
    """Close every connection the databases opened so far hold (the end of a CLI command: run in
    a process that runs many, such as the tests, none is left open for the collector)."""
    while _opened:
        _opened.pop().dispose()
