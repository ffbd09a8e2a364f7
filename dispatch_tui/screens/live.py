"""A screen kept live from PostgreSQL: it owns its listener, its workers and their messages.

Database IO never runs on the event loop. The listener runs in the screen's own thread worker: it
loads everything once LISTEN is in place (and again after every reconnect), then refetches only
the rows a notification names, and posts each frozen snapshot to this screen. Actions run in
another thread worker and come back as an `ActionDone`. The app only picks the screen; a screen
never imports the app.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, TypeVar

from textual import on, work
from textual.message import Message
from textual.screen import Screen
from textual.worker import Worker, WorkerState, get_current_worker

from dispatch_tui.config import DeskOptions
from dispatch_tui.db.listener import Change, ConnectionState, Listener, touched
from dispatch_tui.rules import wire
from dispatch_tui.rules.commands import Command
from dispatch_tui.rules.errors import DispatchError
from dispatch_tui.rules.views import Operator, Snapshot
from dispatch_tui.service import executor
from dispatch_tui.service.dispatch_service import DispatchService
from dispatch_tui.service.executor import Answer
from dispatch_tui.service.read_service import ReadService
from dispatch_tui.service.relay import Relay
from dispatch_tui.widgets.map_view import MapView
from dispatch_tui.widgets.status_line import StatusLine

log = logging.getLogger(__name__)

# How far ahead of this screen's estimate of the database clock a relayed change may be (the
# estimate lags by its own read's delay; a change from further ahead is refused, and reloaded).
RELAYED_AHEAD = timedelta(seconds=30)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class DeskContext:
    """What a live screen needs: the service, who works it, and where the data lives."""

    service: ReadService  # a DispatchService for the desk; a read-only ReadService for the board
    operator: Operator
    database_label: str
    database_url: str
    options: DeskOptions


class SnapshotLoaded(Message):
    def __init__(self, snapshot: Snapshot, *, relayed: bool = False) -> None:
        super().__init__()
        self.snapshot = snapshot
        # Read by the relay, not by this screen: its time is the relay's read, a little before
        # it arrived here, so it does not set the screen's clock (`clock_from`).
        self.relayed = relayed


class ConnectionChanged(Message):
    def __init__(self, state: str, server: str | None = None) -> None:
        super().__init__()
        self.state = state
        self.server = server  # the server the listener is connected to, when it knows


class ActionDone(Message):
    """A desk action finished: accepted with its one-line answer, or refused with why."""

    def __init__(self, answer: Answer, command: Command | None = None) -> None:
        super().__init__()
        self.answer = answer
        self.command = command  # None: no command was run (a load or a worker failed)

    @property
    def ok(self) -> bool:
        return self.answer.ok

    @property
    def message(self) -> str:
        return self.answer.message


def failure_message(error: BaseException | None) -> str:
    """The one line a dispatcher sees for an error no one expected."""
    if isinstance(error, DispatchError):
        return error.message
    return "unexpected error; details in the log"


class LiveScreen(Screen[None]):
    """A screen fed by its own listener; subclasses handle `SnapshotLoaded` and the others."""

    # Whether its listener takes part in the relay (`db.listener`): a screen that shows what a
    # `SnapshotLoaded` of the changed rows carries. One that reads something else for a change
    # (a crew's terminal) reads for itself.
    in_relay: ClassVar[bool] = True

    def __init__(self, context: DeskContext) -> None:
        super().__init__()
        self.context = context
        self.db_offset = timedelta(0)
        self._stop_listening = threading.Event()
        # Writes whose outcome is unknown, by request id, until the database says how they ended.
        self.in_doubt: dict[str, Command] = {}
        self._doubt_lock = threading.Lock()

    def db_now(self) -> datetime:
        """The database clock, as estimated from the last snapshot: ages agree across desks."""
        return datetime.now(UTC) + self.db_offset

    def on_mount(self) -> None:
        # Textual runs every class's on_mount in turn (the subclass's, then this one): a
        # subclass's own on_mount must not call this one again.
        # The listener's first resync is the first load: it reads everything once LISTEN is in
        # place, so nothing committed before it is missed.
        self.listen()

    def on_unmount(self) -> None:
        self._stop_listening.set()

    def clock_from(self, snapshot: Snapshot) -> None:
        self.db_offset = snapshot.db_now - datetime.now(UTC)

    # -- workers: all database IO lives here ------------------------------------------------

    def read_everything(self) -> Message:
        """What the screen reads on every (re)connect, on the listener's thread: by default all
        a desk shows. A screen that shows less (a crew's terminal) reads less."""
        return SnapshotLoaded(self.context.service.snapshot())

    def read_changes(self, calls: set[int], units: set[int], hospitals: set[int]) -> Message | None:
        """What the screen reads when these rows changed (None: nothing it shows)."""
        if not (calls or units or hospitals):
            return None
        service = self.context.service
        return SnapshotLoaded(
            service.changed(call_ids=calls, unit_ids=units, hospital_ids=hospitals)
        )

    @work(thread=True, exit_on_error=False, group="listen", name="listener")
    def listen(self) -> None:
        def changed(batch: list[Change]) -> None:
            message = self.read_changes(*touched(batch))
            if message is not None:
                self.post_message(message)

        loaded = threading.Event()

        def resync() -> None:
            try:
                message = self.read_everything()
            except Exception as error:
                # The listener logs it and goes on. A desk that could not load at all says so
                # on its feedback line, as for any failed worker.
                if not loaded.is_set():
                    self.post_message(ActionDone(Answer(False, failure_message(error))))
                raise
            loaded.set()
            if isinstance(message, SnapshotLoaded):
                self.clock_from(message.snapshot)  # now: relayed changes are judged by it
            self.post_message(message)

        def state(value: ConnectionState) -> None:
            self.post_message(ConnectionChanged(value.value, feed.server))

        def relayed(change: wire.Relayed) -> None:
            snapshot = change.snapshot
            if snapshot.db_now > self.db_now() + RELAYED_AHEAD:
                # A forged time would pin its rows over every later change (`versions`).
                raise ValueError("a relayed change from the future")
            if snapshot.calls or snapshot.units or snapshot.hospitals:
                self.post_message(SnapshotLoaded(snapshot, relayed=True))
            # Rows too large to relay: read here, as before the relay.
            message = self.read_changes(*(set(ids) for ids in change.refetch))
            if message is not None:
                self.post_message(message)

        relay = Relay(self.context.service, relayed) if self.in_relay else None

        feed = Listener(
            self.context.database_url,
            on_changes=changed,
            on_state=state,
            on_resync=resync,
            poll_seconds=self.context.options.poll_seconds,
            listen=self.context.options.listen,
            # A desk must be live again within ~2 s of the server returning: retry at least
            # every second (a failed connect to a down local server costs next to nothing).
            max_backoff_seconds=1.0,
            # One transaction's notifications arrive together: take what is there, never wait.
            coalesce_seconds=0.0,
            relay=relay,
        )
        feed.run(self._stop_listening)

    def perform(self, command: Command, request_id: str | None = None) -> None:
        """Run one command off the UI thread; its answer comes back as ActionDone.

        A write runs under `request_id` (a new one if not given): a form saved again after a
        failure passes the same id, so the write is carried out once."""
        self._action_worker(command, request_id or str(uuid.uuid4()))

    @work(thread=True, exit_on_error=False, group="actions")
    def _action_worker(self, command: Command, request_id: str) -> None:
        service = self.context.service
        assert isinstance(service, DispatchService), "only a desk that writes performs commands"
        try:
            answer = executor.answer(service, self.context.operator.username, command, request_id)
        except Exception as error:
            # A bug, not a refusal: logged, and answered like any failed action, so that what
            # sent the command (an intake form waiting for its call) is told.
            log.exception("action %r failed", command)
            answer = Answer(False, failure_message(error))
        if answer.in_doubt:
            with self._doubt_lock:
                self.in_doubt[request_id] = command
        self.post_message(ActionDone(answer, command))
        if not self.context.options.listen:
            # Polling desks would otherwise wait a whole poll for their own change.
            self.post_message(self.read_everything())

    # -- writes whose outcome is unknown: checked by their request ids -----------------------

    @on(ActionDone)
    def _doubt_arose(self, event: ActionDone) -> None:
        if event.answer.in_doubt:
            self._resolve_in_doubt()

    @on(ConnectionChanged)
    def _reconnected(self, event: ConnectionChanged) -> None:
        # Every live screen's status line says the connection's state and, for a cluster, the
        # server in use.
        for line in self.query(StatusLine):
            line.state = event.state
            line.server = event.server
        if event.state in (ConnectionState.LIVE, ConnectionState.POLLING) and self.in_doubt:
            self._resolve_in_doubt()

    @work(thread=True, exit_on_error=False, group="doubt", exclusive=True)
    def _resolve_in_doubt(self) -> None:
        """Ask, every second until the database answers, whether each write in doubt went
        through; say so for each, as an answer of its own."""
        service = self.context.service
        assert isinstance(service, DispatchService)
        worker = get_current_worker()
        while not worker.is_cancelled and not self._stop_listening.is_set():
            with self._doubt_lock:
                pending = list(self.in_doubt.items())
            if not pending:
                return
            for request_id, command in pending:
                try:
                    answer = executor.resolved(
                        service, self.context.operator.username, command, request_id
                    )
                except DispatchError:
                    log.info("request %s is still in doubt", request_id, exc_info=True)
                    continue
                with self._doubt_lock:
                    settled = self.in_doubt.pop(request_id, None) is not None
                if settled:
                    self.post_message(ActionDone(answer, command))
            self._stop_listening.wait(1.0)

    @on(Worker.StateChanged)
    def worker_failed(self, event: Worker.StateChanged) -> None:
        """One place for what no worker expected: logged with context, one line on the screen."""
        if event.state != WorkerState.ERROR:
            return
        error = event.worker.error
        log.error("worker %s failed", event.worker.name, exc_info=error)
        self.post_message(ActionDone(Answer(False, failure_message(error))))

    # -- a map's streets and addresses ------------------------------------------------------

    @on(MapView.StreetsWanted)
    def _streets_wanted(self, event: MapView.StreetsWanted) -> None:
        event.stop()
        self._read_streets(event)

    @work(thread=True, exit_on_error=False, group="streets", exclusive=True)
    def _read_streets(self, wanted: MapView.StreetsWanted) -> None:
        """The street lines of the box a map asked for, read off the UI thread and posted back
        to the map; a failure is said on the map's first line, and the next view asks again."""
        box = wanted.box
        service = self.context.service
        streets, error = _read_for_map(f"the streets of {box!r}", lambda: service.streets(box))
        wanted.map_view.post_message(MapView.StreetsLoaded(box, streets, error))

    @on(MapView.AddressWanted)
    def _address_wanted(self, event: MapView.AddressWanted) -> None:
        event.stop()
        self._read_address(event)

    @work(thread=True, exit_on_error=False, group="addresses")
    def _read_address(self, wanted: MapView.AddressWanted) -> None:
        """The address nearest the position a map asked about, read off the UI thread and
        posted back to the map (which asks one at a time); a failure is said under the map."""
        service = self.context.service
        found, error = _read_for_map(
            f"the address nearest {wanted.lat}, {wanted.lon}",
            lambda: service.nearest_address(wanted.lat, wanted.lon),
        )
        wanted.map_view.post_message(MapView.AddressFound(wanted.spot, found, error))

    def screen_commands(self) -> Iterable[Any]:
        """The screen's entries for the command palette (none by default)."""
        return ()


def _read_for_map(what: str, read: Callable[[], T]) -> tuple[T | None, str | None]:
    """`read()` for a map, on a worker's thread: its answer, or the one line that says why
    there is none (a refusal as the service words it; anything else logged with `what`)."""
    try:
        return read(), None
    except Exception as error:
        if not isinstance(error, DispatchError):
            log.exception("reading %s failed", what)
        return None, failure_message(error)
