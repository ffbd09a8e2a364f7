"""Opening sessions from the command line: who the operator is, the desk, board and crew
terminal, the drill.

Kept apart from `cli/main.py` (argument parsing, exit codes, output) so each stays one room.
"""

from __future__ import annotations

import argparse
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import replace

from rich.console import Console

from dispatch_tui.config import DeskOptions, Settings
from dispatch_tui.db.connect import Database, login_identity, open_database
from dispatch_tui.db.engine import make_sessionmaker
from dispatch_tui.rules import validation
from dispatch_tui.rules.errors import ExitCode, Forbidden, InvalidInput
from dispatch_tui.rules.views import Operator
from dispatch_tui.service import staffing
from dispatch_tui.service.dispatch_service import DispatchService
from dispatch_tui.service.read_service import ReadService


def operator(db: Database, settings: Settings, ns: argparse.Namespace) -> str:
    """The operator: with a personal database login, that login and nobody else; the schema's
    owner (a superuser, the embedded server's login) acts for whoever --as names."""
    login, owner = login_identity(db.engine)
    if owner:
        return settings.operator
    asked = getattr(ns, "operator", None) or os.environ.get("DISPATCH_USER")
    if asked and asked.lower() != login.lower():
        raise Forbidden(
            f"logged in to the database as {login}; --as/DISPATCH_USER cannot act as {asked[:40]}"
        )
    return login


def viewer(
    reader: ReadService, db: Database, settings: Settings, ns: argparse.Namespace
) -> Operator:
    """Who watches the board: an operator, or a wall display's own board login, which is on no
    staff list (`admin add-operator NAME --role board`)."""
    name = operator(db, settings, ns)
    try:
        return reader.operator(name)
    except Forbidden:
        if login_identity(db.engine)[1]:
            raise  # the owner named someone (--as): they must be on the staff list
        return staffing.wall_display(name)


def service(db: Database, settings: Settings, kind: str = "cli") -> DispatchService:
    return DispatchService(
        make_sessionmaker(db.engine),
        desk=f"{kind}@{settings.desk}",
        dispositions=settings.dispositions,
        reopen_hours=settings.reopen_hours,
        duplicates=settings.duplicates,
        stale_position_seconds=settings.stale_position_seconds,
    )


# A drill of a year is long enough; past that, --duration was a mistake (or inf).
MAX_DURATION = 366 * 24 * 3600.0
# A desk, board or crew terminal closes its kept connections after this long unused.
IDLE_RELEASE_SECONDS = 30.0


def simulate(ns: argparse.Namespace, settings: Settings, out: Console) -> int:
    from dispatch_tui.service import simulate

    # Every comparison with NaN is false: each bound is written as what must hold.
    if not 0 <= ns.calls_per_hour <= 3600:
        raise InvalidInput(f"--calls-per-hour must be 0–3600, not {ns.calls_per_hour:g}")
    if not 0 < ns.speed <= 3600:
        raise InvalidInput(f"--speed must be above 0, at most 3600, not {ns.speed:g}")
    if ns.duration is not None and not 0 < ns.duration <= MAX_DURATION:
        raise InvalidInput(
            f"--duration must be above 0, at most {MAX_DURATION:.0f} seconds, not "
            f"{ns.duration:g} (leave it out to run until Ctrl-C)"
        )
    db = open_database(
        settings.database_url, settings.data_dir, application_name="dispatch-tui simulator"
    )
    drill = service(db, settings, kind="simulator")
    who = drill.operator(operator(db, settings, ns)).username  # refused before playing anything
    options = simulate.SimOptions(
        calls_per_hour=ns.calls_per_hour,
        speed=ns.speed,
        duration=ns.duration,
        auto_dispatch=ns.auto_dispatch,
        seed=ns.seed,
    )
    stop = threading.Event()
    previous = signal.signal(signal.SIGINT, lambda *_: stop.set())  # Ctrl-C: finish the step, stop
    try:
        simulate.run(
            simulate.Simulator(drill, who, options),
            report=lambda line: out.print(line, markup=False, highlight=False),
            stop=stop,
        )
    finally:
        signal.signal(signal.SIGINT, previous)
    return 0


def listen_url(db: Database, settings: Settings) -> str:
    """Where a live screen or the alerter listens: DISPATCH_LISTEN_URL (straight to the server,
    past a transaction pooler that would swallow the notifications), else the database's URL
    (a listener that hears nothing there says so and polls)."""
    return settings.listen_url or db.engine.url.render_as_string(hide_password=False)


def alerter(ns: argparse.Namespace, settings: Settings, out: Console) -> int:
    """Deliver crew alerts: every one due now (`--once`), or until SIGTERM / Ctrl-C."""
    from dispatch_tui.service.alerter import Alerter, SenderSettings

    sender = SenderSettings.from_env(os.environ)  # refused in one line before connecting
    db = open_database(
        settings.database_url, settings.data_dir, application_name="dispatch-tui alerter"
    )
    delivering = Alerter(
        db.engine,
        sender,
        listen_url=None if ns.poll else listen_url(db, settings),
        report=lambda d: out.print(d.line(), markup=False, highlight=False),
    )
    if ns.once:
        done = delivering.deliver_due()
        return 0 if all(d.settled for d in done) else int(ExitCode.UNAVAILABLE)
    out.print(
        # The program only: its arguments may carry a gateway's token.
        f"delivering crew alerts from {db.label} with {sender.command[0]}"
        f" ({sender.workers} at once); Ctrl-C or SIGTERM stops",
        markup=False,
        highlight=False,
    )
    until_signalled(delivering.run)
    return 0


# What `dispatch-tui relay` says as its part changes (`db.listener.RelayRole`, by value).
RELAY_ROLES = {
    "relay": "relaying: every desk gets each change's rows from here",
    "follower": "waiting: another relay is working; this one takes over if it stops",
    "alone": "another relay holds on but is silent; trying to take over",
    "none": "not relaying: the server is unreachable, or hears nothing back; retrying",
}


def until_signalled(run: Callable[[threading.Event], None]) -> None:
    """Run a service loop until SIGTERM or Ctrl-C sets its stop event."""
    stop = threading.Event()
    handlers = {
        sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        run(stop)
    finally:
        for sig, previous in handlers.items():
            signal.signal(sig, previous)


def relay(settings: Settings, out: Console) -> int:
    """Be the desks' relay (`db.listener`): read each change once and send its rows to every
    desk. Desks relay among themselves when this does not run; run it beside many desks so
    that none of them carries the others. It waits its turn while another holds the relay."""
    from dispatch_tui.db.listener import Listener
    from dispatch_tui.service.relay import Relay

    db = open_database(
        settings.database_url, settings.data_dir, application_name="dispatch-tui relay"
    )
    reader = ReadService(make_sessionmaker(db.engine), desk=f"relay@{settings.desk}")
    if not reader.may_relay():
        raise Forbidden(
            "this login may not relay: only dispatchers, supervisors and admins hear the rows"
        )
    feed = Listener(
        listen_url(db, settings),
        on_changes=lambda _batch: None,  # waiting its turn: the relay sends these
        on_state=lambda _state: None,  # the listener logs its states
        on_resync=lambda: None,  # it shows nothing: there is nothing to reload
        relay=Relay(reader, apply=lambda _change: None),
        max_backoff_seconds=1.0,
        on_role=lambda role: out.print(RELAY_ROLES[role], markup=False, highlight=False),
    )
    out.print(
        f"relaying changes from {db.label}; Ctrl-C or SIGTERM stops", markup=False, highlight=False
    )
    until_signalled(feed.run)
    return 0


def desk(ns: argparse.Namespace, settings: Settings, *, mode: str) -> int:
    # Textual is imported only here: the scripted verbs start faster without it.
    from dispatch_tui.app import DispatchApp
    from dispatch_tui.screens.live import DeskContext

    board = mode == "board"
    db = open_database(
        settings.database_url,
        settings.data_dir,
        application_name=f"dispatch-tui {mode}",
        read_only=board,  # the board's sessions are read-only in PostgreSQL itself
        # A desk mostly listens (the relay sends it the rows): it keeps no idle connection
        # but its listener's.
        release_idle_seconds=IDLE_RELEASE_SECONDS,
    )
    reader: ReadService = (
        ReadService(
            make_sessionmaker(db.engine),
            desk=f"board@{settings.desk}",
            stale_position_seconds=settings.stale_position_seconds,
        )
        if board
        else service(db, settings, kind="desk")
    )
    # With a personal login the operator is that login; an unknown one is refused before the
    # desk opens (a board login watches the board as the wall display).
    who = viewer(reader, db, settings, ns) if board else reader.operator(operator(db, settings, ns))
    options = DeskOptions.load()
    if ns.poll:
        options = replace(options, listen=False)
    context = DeskContext(
        service=reader,
        operator=who,
        database_label=db.label,
        database_url=listen_url(db, settings),
        options=options,
    )
    DispatchApp(context, mode=mode).run()
    return 0


def crew(ns: argparse.Namespace, settings: Settings) -> int:
    """A unit's crew terminal. Anyone but the paramedic crewing that unit is refused in one
    line before it opens (exit 5), as the service refuses them the unit's status keys."""
    from dispatch_tui.app import DispatchApp
    from dispatch_tui.screens.live import DeskContext

    code = validation.unit_code(ns.unit)
    db = open_database(
        settings.database_url,
        settings.data_dir,
        application_name=f"dispatch-tui crew {code}",
        release_idle_seconds=IDLE_RELEASE_SECONDS,
    )
    writer = service(db, settings, kind=f"crew-{code}")
    who = writer.operator(operator(db, settings, ns))
    writer.crew(who.username, code)
    options = DeskOptions.load()
    if ns.poll:
        options = replace(options, listen=False)
    context = DeskContext(
        service=writer,
        operator=who,
        database_label=db.label,
        database_url=listen_url(db, settings),
        options=options,
    )
    DispatchApp(context, mode="crew", unit=code).run()
    return 0
