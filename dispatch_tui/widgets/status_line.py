"""The desk's status line: operator, database, connection state, last update, clock.

The connection state is always spelled out (live / reconnecting / polling): a desk that silently
stopped updating is the failure dispatchers fear most.
"""

from __future__ import annotations

from datetime import datetime

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

NOTICE_SECONDS = 30.0

STATE_STYLES = {
    "live": "bold green",
    "connecting": "yellow",
    "reconnecting": "bold white on red",
    "polling": "bold black on yellow",
}


# A standby's data older than this is said loudly.
STANDBY_LATE_SECONDS = 30


class StatusLine(Static):
    # Set on every snapshot and every clock tick, but the line reads the same for a whole
    # second: it repaints only when its text changes.
    state: reactive[str] = reactive("connecting", repaint=False)
    last_update: reactive[datetime | None] = reactive(None, repaint=False)
    now: reactive[datetime | None] = reactive(None, repaint=False)
    # A word for the dispatcher (a new call above the selection), shown for NOTICE_SECONDS.
    notice: reactive[str] = reactive("", repaint=False)
    # The server in use, when the database names several (a cluster): said after it.
    server: reactive[str | None] = reactive(None, repaint=False)
    # On a standby (a board can run on one): how old its data is, in seconds.
    standby_age: reactive[float | None] = reactive(None, repaint=False)

    def __init__(
        self, operator: str, role: str, database: str, title: str = "DISPATCH", **kwargs: object
    ) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.title = title  # what the line starts with: DISPATCH on a desk, the unit on a crew's
        self.operator = operator
        self.role = role
        self.database = database
        self._shown: Text | None = None

    def _watch_state(self) -> None:
        self._update()

    def _watch_last_update(self) -> None:
        self._update()

    def _watch_now(self) -> None:
        self._update()

    def _watch_notice(self) -> None:
        self._update()

    def _watch_server(self) -> None:
        self._update()

    def _watch_standby_age(self) -> None:
        self._update()

    def notify_above(self, message: str) -> None:
        self.notice = message
        self.set_timer(NOTICE_SECONDS, lambda: self._clear(message))

    def _clear(self, message: str) -> None:
        if self.notice == message:
            self.notice = ""

    def _update(self) -> None:
        text = self.text()
        if self._shown is None or text != self._shown:
            self._shown = text
            self.refresh()

    def render(self) -> Text:
        if self._shown is None:
            self._shown = self.text()
        return self._shown

    def text(self) -> Text:
        text = Text()
        text.append(f" {self.title} ", style="bold reverse")
        text.append("  ")
        text.append(self.operator, style="bold")
        text.append(f" ({self.role})  db: ")
        text.append(self.database)
        if self.server and "," in self.database:
            text.append(f" via {self.server}")
        text.append("  ")
        text.append(f" {self.state.upper()} ", style=STATE_STYLES.get(self.state, ""))
        if self.standby_age is not None:
            age = int(self.standby_age)
            late = age > STANDBY_LATE_SECONDS
            text.append("  ")
            text.append(
                f" STANDBY · data as of {age} s ago{' — LATE' if late else ''} ",
                style="bold reverse red" if late else "bold",
            )
        if self.last_update is not None and self.now is not None:
            seconds = max(0, int((self.now - self.last_update).total_seconds()))
            text.append(f"  updated {seconds}s ago")
        if self.now is not None:
            text.append("  ")
            text.append(self.now.astimezone().strftime("%H:%M:%S"), style="bold")
        if self.notice:
            text.append("  ")
            text.append(f" {self.notice} ", style="bold black on yellow")
        return text
