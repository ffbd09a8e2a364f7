"""The Textual app: the dispatcher's desk, kept live from PostgreSQL.

Database IO never runs on the event loop. Actions run in thread workers that end by posting a
message; the LISTEN connection runs in its own thread worker, loads everything once it listens
(and again after every reconnect), and then refetches only the rows a notification names. The UI
thread only applies frozen snapshots to the panes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from textual import on, work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from dispatch_tui.config import DeskOptions
from dispatch_tui.db.listener import Change, ConnectionState, Listener
from dispatch_tui.rules.errors import DispatchError
from dispatch_tui.rules.views import Operator, Snapshot
from dispatch_tui.service.read_service import ReadService

log = logging.getLogger(__name__)


class SnapshotLoaded(Message):
    def __init__(self, snapshot: Snapshot) -> None:
        super().__init__()
        self.snapshot = snapshot


class ConnectionChanged(Message):
    def __init__(self, state: str) -> None:
        super().__init__()
        self.state = state


class ActionDone(Message):
    """A desk action finished: `ok` with its one-line message, or refused with why."""

    def __init__(self, ok: bool, message: str) -> None:
        super().__init__()
        self.ok = ok
        self.message = message


@dataclass(frozen=True, slots=True)
class DeskContext:
    service: ReadService  # a DispatchService for the desk; a read-only ReadService for the board
    operator: Operator
    database_label: str
    database_url: str
    options: DeskOptions


def ids_of(changes: Iterable[Change]) -> tuple[set[int], set[int], set[int]]:
    """Which calls, units and hospitals a batch of notifications touches."""
    calls: set[int] = set()
    units: set[int] = set()
    hospitals: set[int] = set()
    for change in changes:
        if change.table == "calls":
            calls.add(change.id)
        elif change.table == "units":
            units.add(change.id)
        elif change.table == "hospitals":
            hospitals.add(change.id)
        elif change.table == "assignments":
            if change.call_id is not None:
                calls.add(change.call_id)
            if change.unit_id is not None:
                units.add(change.unit_id)
    return calls, units, hospitals


def failure_message(error: BaseException | None) -> str:
    """The one line a dispatcher sees for an error no one expected."""
    if isinstance(error, DispatchError):
        return error.message
    return "unexpected error; details in the log"


class DispatchApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "dispatch-tui"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit", id="quit"),
        Binding("question_mark", "help", "Keys", id="help"),
    ]

    def __init__(
        self,
        context: DeskContext,
        *,
        mode: str = "desk",
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        super().__init__()
        self.context = context
        self.mode = mode
        self.clock = clock  # tests drive the board's timers with their own clock
        self.db_offset = timedelta(0)
        self._stop_listening = threading.Event()
        self.desk: Screen[Any] | None = None

    def deliver(self, message: Message) -> None:
        """Hand a worker's result to the desk screen (thread-safe; the screen applies it)."""
        target = self.desk if self.desk is not None else self
        target.post_message(message)

    # -- time --------------------------------------------------------------------------------

    def db_now(self) -> datetime:
        """The database clock, as estimated from the last snapshot: ages agree across desks."""
        return datetime.now(UTC) + self.db_offset

    # -- lifecycle ---------------------------------------------------------------------------

    def on_mount(self) -> None:
        if self.mode == "board":
            from dispatch_tui.screens.board import BoardScreen

            self.desk = BoardScreen(self.context, now=self.clock)
            self.title = "dispatch-tui board"
        else:
            from dispatch_tui.screens.desk import DeskScreen

            self.desk = DeskScreen(self.context)
        self.push_screen(self.desk)
        # The listener's first resync is the first load: it reads everything once LISTEN is in
        # place, so nothing committed before it is missed, and a second full snapshot moments
        # after the first (reading and applying every row again) is not needed.
        self.listen()

    def on_unmount(self) -> None:
        self._stop_listening.set()

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        extra: Callable[[], Iterable[SystemCommand]] | None = getattr(screen, "desk_commands", None)
        if extra is not None:
            yield from extra()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # The board has no desk keys to explain.
        return not (action == "help" and self.mode == "board")

    def action_help(self) -> None:
        from dispatch_tui.screens.help import HelpScreen

        self.push_screen(HelpScreen())

    # -- workers: all database IO lives here ------------------------------------------------

    @work(thread=True, exit_on_error=False, group="listen", name="listener")
    def listen(self) -> None:
        service = self.context.service

        def changed(batch: list[Change]) -> None:
            calls, units, hospitals = ids_of(batch)
            if calls or units or hospitals:
                snapshot = service.changed(call_ids=calls, unit_ids=units, hospital_ids=hospitals)
                self.deliver(SnapshotLoaded(snapshot))

        loaded = threading.Event()

        def resync() -> None:
            try:
                snapshot = service.snapshot()
            except Exception as error:
                # The listener logs it and goes on. A desk that could not load at all says so
                # on its feedback line, as for any failed worker.
                if not loaded.is_set():
                    self.deliver(ActionDone(False, failure_message(error)))
                raise
            loaded.set()
            self.deliver(SnapshotLoaded(snapshot))

        def state(value: ConnectionState) -> None:
            self.deliver(ConnectionChanged(value.value))

        Listener(
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
        ).run(self._stop_listening)

    def perform(self, label: str, action: Callable[[], str]) -> None:
        """Run one service call off the UI thread; its outcome comes back as ActionDone."""
        self._action_worker(label, action)

    @work(thread=True, exit_on_error=False, group="actions")
    def _action_worker(self, label: str, action: Callable[[], str]) -> None:
        try:
            message = action()
        except DispatchError as err:
            self.deliver(ActionDone(False, err.message))
            return
        self.deliver(ActionDone(True, message))
        if not self.context.options.listen:
            # Polling desks would otherwise wait a whole poll for their own change.
            self.deliver(SnapshotLoaded(self.context.service.snapshot()))

    @on(Worker.StateChanged)
    def worker_failed(self, event: Worker.StateChanged) -> None:
        """One place for what no worker expected: logged with context, one line on the desk."""
        if event.state != WorkerState.ERROR:
            return
        error = event.worker.error
        log.error("desk worker %s failed", event.worker.name, exc_info=error)
        self.deliver(ActionDone(False, failure_message(error)))
