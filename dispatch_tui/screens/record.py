"""A call's record on the desk: every field, its units and their times, and one timeline.

Thin on purpose: the desk that opened it reads the record (off the UI thread) and hands it over
with `show`, again whenever a change to the call reaches the desk, so the record follows live. Its
keys hand the call to the desk's `act` callback; the desk asks what it must (a disposition, a
reason, a confirmation) and runs the command. Text from the database is shown as data, never as
markup.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Label, RichLog, Static

from dispatch_tui.rules.enums import CallStatus
from dispatch_tui.rules.lifecycle import label, unit_label
from dispatch_tui.rules.views import AssignmentView, CallRecord, CallView


def _time(value: datetime | None) -> str:
    return value.astimezone().strftime("%H:%M:%S") if value is not None else "—"


def _alert(a: AssignmentView) -> Text:
    """The crew alert of an assignment: sent (when), pending, FAILED (with why, loudly), or not
    sent because the unit was stood down or cleared first."""
    match a.alert_state:
        case "sent":
            return Text(f"sent {_time(a.alert_at)}")
        case "failed":
            return Text(f"FAILED {_time(a.alert_at)}: {a.alert_error or ''}", style="bold red")
        case "superseded":
            return Text(f"not sent: {a.alert_error or ''}", style="dim")
        case "pending" if a.alert_attempts:
            return Text(f"retrying ({a.alert_attempts} tried)", style="bold yellow")
        case "pending":
            return Text("pending", style="dim")
    return Text("—")


# A call whose location the gazetteer did not verify (`CallView.location_verified`).
UNVERIFIED_WORDS = (
    "UNVERIFIED LOCATION: not an address the gazetteer has; any position is approximate,"
    " confirm it with the caller"
)


def prior_words(record: CallRecord) -> str:
    """The calls at the same address in the 12 months before: `2 in 12 months: 14 Nov 2026
    C-1002 Fall: treated and released · …` (or `none in 12 months`)."""
    if not record.prior_count:
        return "none at this address in 12 months"
    listed = " · ".join(p.line() for p in record.prior)
    more = f" (the last {len(record.prior)})" if record.prior_count > len(record.prior) else ""
    return f"{record.prior_count} in 12 months{more}: {listed}"


def _stamp(value: datetime) -> str:
    return value.astimezone().strftime("%d %b %H:%M:%S")


class RecordScreen(Screen[None]):
    """The record of one call, kept current by the desk."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", tooltip="to the desk"),
        Binding("N", "act('note')", "Note", tooltip="add a line to the narrative"),
        Binding("u", "act('edit')", "Edit", tooltip="priority, nature, location, caller"),
        Binding("d", "act('dispatch')", "Dispatch", tooltip="recommended units"),
        Binding("c", "act('close')", "Close", tooltip="asks for a disposition"),
        Binding("x", "act('cancel')", "Cancel call", tooltip="asks why, and to confirm"),
        Binding("r", "act('reopen')", "Re-open", tooltip="a call ended in the last 24 h"),
    ]

    def __init__(
        self,
        number: str,
        act: Callable[[str, CallView], None],
        may: Callable[[str], bool] = lambda action: True,
    ) -> None:
        """`act(action, call)`: the desk carries out a key (note, edit, dispatch, close,
        cancel, reopen) for the call as the record last showed it. `may(action)`: whether the
        operator's role allows it (a key it does not is hidden)."""
        super().__init__()
        self.number = number
        self.act = act
        self.may = may
        self.record: CallRecord | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="record"):
            yield Static(Text(f"{self.number}: reading the record…"), id="record-head")
            yield DataTable(id="record-units", cursor_type="none", zebra_stripes=True)
            yield Label(Text("Timeline"), classes="record-title")
            yield RichLog(id="record-timeline", wrap=True, markup=False, highlight=False)
        yield Label("", id="record-feedback")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        units = self.query_one("#record-units", DataTable)
        units.add_columns(
            "Unit",
            "Status",
            "Notified",
            "Alert",
            "Ack",
            "En route",
            "On scene",
            "Transport",
            "At dest",
            "Ended",
        )

    @property
    def call_id(self) -> int | None:
        return self.record.call.id if self.record is not None else None

    def show(self, record: CallRecord) -> None:
        """Show `record` (a newer reading of the same call)."""
        self.record = record
        call = record.call
        head = Text()
        head.append(f"{call.number}  P{call.priority}", style="bold")
        if call.determinant:
            head.append(f" {call.determinant}")
        head.append(f"  {label(call.status).upper()}  ", style="bold")
        head.append(call.nature)
        if call.reopened_at is not None and CallStatus(call.status).is_open:
            head.append(f"  re-opened {_time(call.reopened_at)}", style="bold yellow")
        fields = [
            ("Location", call.location_text),
            ("Place", record.place or "—"),
            (
                "Position",
                f"{call.lat:.5f}, {call.lon:.5f}" if call.lat is not None and call.lon else "—",
            ),
            ("Caller", call.caller_name or "—"),
            ("Phone", call.caller_phone or "—"),
            ("Received", _stamp(call.received_at)),
            ("Dispatched", _time(call.first_dispatched_at)),
            ("Destination", call.destination_code or "—"),
            ("Taken by", record.created_by or "—"),
        ]
        if call.notes:
            fields.append(("Notes", call.notes))
        if call.closed_at or call.cancelled_at:
            ended = "closed" if call.closed_at else "cancelled"
            fields.append(("Ended", f"{ended} {_time(call.closed_at or call.cancelled_at)}"))
        if call.disposition:
            fields.append(("Disposition", call.disposition))
        for name, value in fields:
            head.append(f"\n  {name:<12}", style="dim")
            head.append(value)
        for hazard in record.hazards:  # loudly, in words: what a crew must know of the address
            head.append("\n  ")
            head.append(f" {hazard.line()} ", style="bold reverse red")
        if not call.location_verified:
            head.append("\n  ")
            head.append(f" {UNVERIFIED_WORDS} ", style="bold reverse yellow")
        head.append(f"\n  {'Prior calls':<12}", style="dim")
        head.append(prior_words(record))
        self.query_one("#record-head", Static).update(head)
        units = self.query_one("#record-units", DataTable)
        units.clear()
        for a in call.assignments:
            units.add_row(
                Text(a.unit_code, style="bold"),
                Text(unit_label(a.unit_status, a.en_route_at is not None)),
                _time(a.notified_at),
                _alert(a),
                _time(a.acknowledged_at),
                _time(a.en_route_at),
                _time(a.on_scene_at),
                _time(a.transporting_at),
                _time(a.at_destination_at),
                _time(a.cleared_at or a.cancelled_at),
            )
        log = self.query_one("#record-timeline", RichLog)
        log.clear()
        for entry in record.timeline:
            line = Text(f"{_time(entry.at)}  ", style="dim")
            line.append(f"{entry.who:<10} ", style="bold")
            if entry.source == "note":
                line.append(f"note #{entry.ref}: ", style="cyan")
            elif entry.source == "event":
                line.append(f"#{entry.ref} ", style="dim")
            line.append(entry.text)
            log.write(line)
        if not record.timeline:
            log.write(Text("nothing yet", style="dim"))
        self.refresh_bindings()  # the keys that apply follow the call's state

    def say(self, message: Text) -> None:
        self.query_one("#record-feedback", Label).update(message)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Keys that cannot apply to this call now are hidden (and do nothing)."""
        if action != "act":
            return True
        what = str(parameters[0]) if parameters else ""
        if not self.may(what):
            return False
        if self.record is None:
            return True
        status = CallStatus(self.record.call.status)
        if what in ("edit", "cancel", "dispatch"):
            return status.is_open
        if what == "close":
            return status.is_open and status not in (CallStatus.RECEIVED, CallStatus.DISPATCHED)
        if what == "reopen":
            return not status.is_open
        return True

    def action_act(self, what: str) -> None:
        if self.record is not None:
            self.act(what, self.record.call)

    def action_back(self) -> None:
        self.dismiss(None)
