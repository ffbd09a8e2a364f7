"""The `dispatch-tui` command: every desk action as a verb, plus server, schema and demo set-up.

Exit codes (stable, for scripts): 0 done, 1 unexpected (logged with context), 2 invalid input,
3 not found, 4 conflict (the state changed under you), 5 forbidden, 6 database unavailable or
schema not current, 7 outcome unknown (the connection was lost while a change was being saved:
run the same command again with the `--request-id` it names, and it is carried out only if it
was not). Errors are one `error: ...` line on stderr; with `--json`, stdout also gets a JSON
object `{"ok": false, "error": {"kind": ..., "message": ...}}`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from rich.console import Console
from sqlalchemy.exc import OperationalError

from dispatch_tui import __version__
from dispatch_tui.cli import gis, launch
from dispatch_tui.cli.logfile import MaskingFormatter, mask, private_file_handler, secrets_of
from dispatch_tui.cli.output import json_document, print_outcome
from dispatch_tui.config import Settings
from dispatch_tui.db.connect import close_databases, open_database
from dispatch_tui.db.embedded import EmbeddedServer, EmbeddedServerError
from dispatch_tui.db.engine import make_sessionmaker, normalise_url, schema_state, upgrade
from dispatch_tui.rules import grammar
from dispatch_tui.rules.errors import (
    DispatchError,
    DuplicateSuspected,
    ExitCode,
    OutcomeUnknown,
    Unavailable,
)
from dispatch_tui.service import demo, executor, staffing
from dispatch_tui.service.read_service import ReadService

log = logging.getLogger("dispatch_tui")


def build_parser() -> argparse.ArgumentParser:
    common = grammar.GrammarParser(add_help=False)
    common.add_argument(
        "--db",
        default=argparse.SUPPRESS,
        metavar="URL",
        help="PostgreSQL URL of a shared server (default: DISPATCH_DATABASE_URL, else embedded)",
    )
    common.add_argument(
        "--as",
        dest="operator",
        default=argparse.SUPPRESS,
        metavar="USER",
        help="act as this operator (default: DISPATCH_USER, else the OS user)",
    )
    common.add_argument(
        "--request-id",
        default=argparse.SUPPRESS,
        metavar="ID",
        help="a write's request id: the same write run again with it is done once",
    )
    common.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="print the result as one JSON object",
    )

    parser = grammar.GrammarParser(
        prog="dispatch-tui",
        description="Ambulance dispatch desk and its command-line verbs.",
        parents=[common],
        epilog="exit codes: 0 done, 1 unexpected, 2 invalid input, 3 not found, 4 conflict, "
        "5 forbidden, 6 database unavailable, 7 outcome unknown",
    )
    parser.add_argument("--version", action="version", version=f"dispatch-tui {__version__}")
    sub = parser.add_subparsers(dest="command", required=False, parser_class=grammar.GrammarParser)
    parser.set_defaults(verb="desk", poll=False)  # no verb: open the desk
    report = sub.add_parser(
        "report", help="the shift's numbers as fractiles; CSV export", parents=[common]
    )
    report.add_argument("--since", help="start (ISO 8601, shift, or an age like 8h; default 24h)")
    report.add_argument("--until", help="end (default now)")
    report.add_argument(
        "--by",
        type=str.lower,
        choices=["priority", "unit", "hospital"],
        help="break the numbers down",
    )
    report.add_argument(
        "--csv", metavar="FILE", help="one row per assignment with NEMSIS-style times"
    )
    report.set_defaults(verb="report")
    admin = sub.add_parser("admin", help="staff and their database logins").add_subparsers(
        dest="admin_verb", required=True
    )
    add_op = admin.add_parser(
        "add-operator", help="add a staff member and their login role", parents=[common]
    )
    add_op.add_argument("user", help="user name (also the PostgreSQL login)")
    add_op.add_argument(
        "--role",
        required=True,
        choices=staffing.ROLES,
        help="a staff role, or board: a wall display's login that can only read",
    )
    add_op.add_argument("--name", default="", help="full name")
    add_op.add_argument("--unit", help="the unit a paramedic crews")
    add_op.add_argument(
        "--password-stdin", action="store_true", help="read the login's password from stdin"
    )
    add_op.add_argument(
        "--no-login", action="store_true", help="staff row only (e.g. on the embedded server)"
    )
    add_op.set_defaults(verb="admin.add_operator")
    sim = sub.add_parser(
        "simulate", help="play a drill shift through the service", parents=[common]
    )
    sim.add_argument(
        "--calls-per-hour", type=float, default=12.0, help="new calls per simulated hour"
    )
    sim.add_argument("--speed", type=float, default=1.0, help="simulated seconds per real second")
    sim.add_argument(
        "--duration", type=float, help="stop after this many real seconds (default: Ctrl-C)"
    )
    sim.add_argument(
        "--auto-dispatch", action="store_true", help="a virtual dispatcher takes the top unit"
    )
    sim.add_argument("--seed", type=int, help="same seed, same drill")
    sim.set_defaults(verb="simulate")
    alerter = sub.add_parser(
        "alerter",
        help="deliver crew alerts through DISPATCH_ALERT_COMMAND until stopped",
        parents=[common],
    )
    alerter.add_argument("--once", action="store_true", help="deliver what is due now, then stop")
    alerter.add_argument(
        "--poll", action="store_true", help="poll instead of LISTEN/NOTIFY (e.g. behind a pooler)"
    )
    alerter.set_defaults(verb="alerter")
    relay = sub.add_parser(
        "relay",
        help="read each change once and send its rows to every desk, until stopped",
        parents=[common],
    )
    relay.set_defaults(verb="relay")
    desk = sub.add_parser("desk", help="open the dispatcher's desk (the default)", parents=[common])
    desk.add_argument(
        "--poll", action="store_true", help="poll instead of LISTEN/NOTIFY (e.g. behind a pooler)"
    )
    desk.set_defaults(verb="desk")
    board = sub.add_parser(
        "board", help="open the supervisor's read-only wall board", parents=[common]
    )
    board.add_argument("--poll", action="store_true", help="poll instead of LISTEN/NOTIFY")
    board.set_defaults(verb="board")
    crew = sub.add_parser(
        "crew", help="open a unit's crew terminal (its paramedic's login)", parents=[common]
    )
    crew.add_argument("unit", help="the unit the login crews, e.g. M12")
    crew.add_argument("--poll", action="store_true", help="poll instead of LISTEN/NOTIFY")
    crew.set_defaults(verb="crew")
    groups = grammar.add_verbs(sub, [common])
    gis.add_import(groups["gis"], common)

    server = sub.add_parser("server", help="the embedded PostgreSQL server").add_subparsers(
        dest="server_verb", required=True
    )
    for name, text in (
        ("start", "start it (detached)"),
        ("stop", "stop it"),
        ("status", "is it running?"),
    ):
        server.add_parser(name, help=text, parents=[common]).set_defaults(verb=f"server.{name}")
    db = sub.add_parser("db", help="database schema").add_subparsers(dest="db_verb", required=True)
    db.add_parser(
        "upgrade", help="apply migrations (safe to repeat)", parents=[common]
    ).set_defaults(verb="db.upgrade")
    db.add_parser("status", help="schema revision", parents=[common]).set_defaults(verb="db.status")
    demo_p = sub.add_parser("demo", help="demo data").add_subparsers(
        dest="demo_verb", required=True
    )
    demo_p.add_parser(
        "seed", help="load the demo service area (safe to repeat)", parents=[common]
    ).set_defaults(verb="demo.seed")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in args
    # Piped output gets wide lines rather than 80-column wrapping that scripts would have to undo.
    out = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
    try:
        ns = build_parser().parse_args(grammar.expand(args))
        as_json = as_json or bool(getattr(ns, "json", False))  # also --js: an abbreviation
        settings = Settings.load(
            database_url=getattr(ns, "db", None), operator=getattr(ns, "operator", None), desk=None
        )
    except DispatchError as err:
        return _fail(err.exit_code, err.kind, err.message, as_json)
    except SystemExit as done:  # --help and --version print and stop: that is success
        return done.code if isinstance(done.code, int) else 0
    # --db wins over DISPATCH_DATABASE_URL, but neither password may reach the log.
    urls = [settings.database_url, os.environ.get("DISPATCH_DATABASE_URL"), settings.listen_url]
    _log_to_file(settings.log_file, secrets_of(urls))
    try:
        return _run(ns, settings, out, as_json)
    except OutcomeUnknown as err:
        rid = err.request_id
        again = f"; to finish it, run the same command with --request-id {rid}" if rid else ""
        return _fail(err.exit_code, err.kind, err.message + again, as_json, request_id=rid)
    except DuplicateSuspected as err:
        return _fail(err.exit_code, err.kind, err.message, as_json, candidates=err.candidates)
    except DispatchError as err:
        return _fail(err.exit_code, err.kind, err.message, as_json)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as other Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception:
        log.exception(
            "unexpected error in %r as %s on %s",
            # The file's formatter masks passwords too; argv is masked here as well, so that no
            # other handler ever sees one (`--db URL`, `--db=URL`, a URL anywhere).
            [mask(a) for a in args],
            settings.operator,
            _redacted(settings),
        )
        return _fail(
            ExitCode.UNEXPECTED,
            "unexpected",
            f"unexpected error; details in {settings.log_file}",
            as_json,
        )
    finally:
        close_databases()


def _redacted(settings: Settings) -> str:
    """The database for a log line, never with its password."""
    if not settings.database_url:
        return "embedded"
    try:
        return normalise_url(settings.database_url).render_as_string(hide_password=True)
    except Exception:
        return "(unparseable URL)"


def _fail(
    code: int,
    kind: str,
    message: str,
    as_json: bool,
    *,
    request_id: str | None = None,
    candidates: list[dict[str, object]] | None = None,
) -> int:
    print(f"error: {message}", file=sys.stderr)
    if as_json:
        error: dict[str, object] = {"kind": kind, "message": message, "exit_code": int(code)}
        if request_id is not None:
            error["request_id"] = request_id
        if candidates is not None:  # a new call that may be an open one: which ones
            error["candidates"] = candidates
        print(json.dumps({"ok": False, "error": error}))
    return int(code)


def _log_to_file(path: Path, secrets: list[str]) -> None:
    """Logs go to a file, never over the terminal; no file at all is better than a crash.

    The file is private (0600) and every line written to it has its passwords masked
    (`cli/logfile.py`)."""
    global _log_handler
    root = logging.getLogger()
    formatter = MaskingFormatter(
        "%(asctime)s %(levelname)s %(name)s %(process)d: %(message)s", secrets
    )
    if _log_handler is not None:
        same = getattr(_log_handler, "baseFilename", None) == str(path.absolute())
        if same and path.exists():  # (tests run main() many times, and remove their files)
            _log_handler.setFormatter(formatter)  # this run's URL may differ from the last's
            return
        root.removeHandler(_log_handler)
        _log_handler.close()
    try:
        handler: logging.Handler = private_file_handler(path)
    except OSError:
        handler = logging.NullHandler()
    handler.setFormatter(formatter)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    _log_handler = handler


_log_handler: logging.Handler | None = None


def _run(ns: argparse.Namespace, settings: Settings, out: Console, as_json: bool) -> int:
    verb: str = ns.verb
    if verb.startswith("server."):
        return _server(verb, settings, out, as_json)
    if verb in ("db.upgrade", "db.status"):
        db = open_database(settings.database_url, settings.data_dir, check_schema=False)
        try:
            state = upgrade(db.engine) if verb == "db.upgrade" else schema_state(db.engine)
        except OperationalError:
            raise Unavailable(f"cannot reach the dispatch database at {db.label}") from None
        message = (
            f"schema at {state.current or 'nothing'} (this version: {state.head}) on {db.label}"
        )
        _emit(
            out,
            as_json,
            message,
            {"current": state.current, "head": state.head, "database": db.label},
        )
        return 0 if verb == "db.upgrade" or state.is_current else int(ExitCode.UNAVAILABLE)
    if verb == "demo.seed":
        db = open_database(settings.database_url, settings.data_dir, check_schema=False)
        upgrade(db.engine)
        report = demo.seed(launch.service(db, settings))
        message = (
            f"demo service area ready on {db.label}: {report.calls} new pending calls, "
            f"{report.address_points:,} new address points"
            + (f"; {report.os_user} can dispatch" if report.os_user else "")
        )
        _emit(out, as_json, message, asdict(report))
        return 0
    if verb == "report":
        from dispatch_tui.cli import report as shift_report

        db = open_database(settings.database_url, settings.data_dir, read_only=True)
        reader = ReadService(make_sessionmaker(db.engine))
        return shift_report.run(
            reader, out, since=ns.since, until=ns.until, by=ns.by, csv_path=ns.csv, as_json=as_json
        )
    if verb == "gis.import":
        return gis.run_import(ns, settings, out, as_json)
    if verb == "simulate":
        return launch.simulate(ns, settings, out)
    if verb == "alerter":
        return launch.alerter(ns, settings, out)
    if verb == "relay":
        return launch.relay(settings, out)
    if verb == "admin.add_operator":
        from dispatch_tui.service.staffing import add_operator

        db = open_database(settings.database_url, settings.data_dir)
        password = sys.stdin.readline().rstrip("\n") if ns.password_stdin else None
        added = add_operator(
            launch.service(db, settings),
            launch.operator(db, settings, ns),
            ns.user,
            ns.role,
            full_name=ns.name,
            unit=ns.unit,
            password=password,
            login=not ns.no_login,
        )
        login = "" if ns.no_login else " with a database login"
        _emit(
            out,
            as_json,
            f"{added.username} added as {added.role}{login}",
            {"operator": added.username, "role": added.role},
        )
        return 0
    if verb in ("desk", "board"):
        return launch.desk(ns, settings, mode=verb)
    if verb == "crew":
        return launch.crew(ns, settings)
    command = grammar.command_of(ns)
    assert command is not None, f"verb {verb} builds no command"
    db = open_database(settings.database_url, settings.data_dir)
    outcome = executor.execute(
        launch.service(db, settings),
        launch.operator(db, settings, ns),
        command,
        request_id=getattr(ns, "request_id", None),
    )
    if as_json:
        out.print(
            json_document(outcome, settings.stale_position_seconds),
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    else:
        if outcome.data is not None:
            print_outcome(out, outcome, settings.stale_position_seconds)
        if (outcome.kind == "call" and not verb.endswith("show")) or outcome.done_before:
            out.print(outcome.message, markup=False)
    return 0


def _server(verb: str, settings: Settings, out: Console, as_json: bool) -> int:
    if settings.database_url:
        raise Unavailable(
            "DISPATCH_DATABASE_URL names a shared server; `server` manages only the embedded one"
        )
    server = EmbeddedServer(settings.data_dir)
    try:
        if verb == "server.start":
            server.start()
        elif verb == "server.stop":
            stopped = server.stop()
            _emit(
                out,
                as_json,
                "embedded server stopped" if stopped else "embedded server was not running",
                {"running": False, "data_dir": str(settings.data_dir)},
            )
            return 0
    except EmbeddedServerError as err:
        raise Unavailable(str(err)) from None
    status = server.status()
    message = (
        f"embedded server running (pid {status.pid}, socket in {status.socket_dir})"
        if status.running
        else f"embedded server not running (data in {settings.data_dir})"
    )
    _emit(
        out,
        as_json,
        message,
        {"running": status.running, "pid": status.pid, "data_dir": str(settings.data_dir)},
    )
    return 0 if status.running or verb != "server.status" else 3


def _emit(out: Console, as_json: bool, message: str, data: dict[str, object]) -> None:
    if as_json:
        print(json.dumps({"ok": True, "message": message, **data}))
    else:
        out.print(message, markup=False, highlight=False)
