"""The desk's four panes: pending calls, active calls, units, hospitals.

Declarative: each pane says its columns, its cells, its sort order and which rows it takes; the
keyed table (`keyed_table.py`) keeps it in step. Text that came from the database goes in as
`rich.text.Text`, so it is shown as data, never as markup. Each pane's keys post a `Pane.Action`
for the selected row (the screen turns it into a command) and are hidden when they do not apply
to that row or the operator's role; the footer is rebuilt only when those change. A hidden key
pressed anyway is answered with one line saying why (`refusal`), never with silence.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime
from functools import cache
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

from rich.text import Text
from textual import events
from textual.actions import parse as parse_action
from textual.binding import Binding, BindingType
from textual.message import Message

from dispatch_tui.rules import norms, permissions
from dispatch_tui.rules.enums import CallStatus, HospitalStatus, UnitStatus
from dispatch_tui.rules.errors import Conflict
from dispatch_tui.rules.lifecycle import label, unit_label, unit_short, unit_state, unit_step
from dispatch_tui.rules.norms import PROCESSING_GOAL_SECONDS, clock
from dispatch_tui.rules.views import CallView, HospitalView, UnitView
from dispatch_tui.widgets.keyed_table import KeyedTable

Row = TypeVar("Row", CallView, UnitView, HospitalView)


def minutes(seconds: float) -> str:
    """Time in status to the minute: the units pane can hold hundreds of rows, and a clock
    that changes every second would repaint every one of them every second."""
    whole = max(0, int(seconds)) // 60
    return "<1m" if whole == 0 else f"{whole}m" if whole < 60 else f"{whole // 60}h{whole % 60:02d}"


SHORT_STATUS = {"OUT_OF_SERVICE": "OUT OF SVC"}


# Cells that many rows show alike are made once and shared: a storm's ten thousand pending calls
# would otherwise each build their own "P2" and "LATE". Nothing changes a cell once made (the
# keyed table replaces cells; DataTable and Rich draw them as they are, Rich working on copies).
_PRIORITY = {p: Text(f"P{p}", style="bold red" if p == 1 else "") for p in (1, 2, 3, 4)}
_LATE = Text("LATE", style="bold red")
_OVERDUE = Text("OVERDUE", style="bold reverse red")
_AGAIN = Text("AGAIN", style="bold reverse yellow")
# A call whose address has a hazard note in force: said on its line, in words, in both call panes
# (the record and the crew terminal say which hazard).
_HAZARD = Text("HAZARD", style="bold reverse red")
_UNVERIFIED = Text("UNVERIFIED", style="bold yellow")
_HAZARD_UNVERIFIED = Text.assemble(_HAZARD, " ", _UNVERIFIED)
_NONE = Text()
# The statuses of a call that a unit has reached or is on the way to (open, not pending).
_ACTIVE = frozenset(s.value for s in CallStatus if s.is_open and s != CallStatus.RECEIVED)


def status_text(status: str, styles: dict[str, str]) -> Text:
    """A status as words (never colour alone) in its configured colour."""
    return Text(SHORT_STATUS.get(status, status.replace("_", " ")), style=styles.get(status, ""))


def unit_status_text(unit: UnitView, styles: dict[str, str]) -> Text:
    """A unit's state as the desk names it: DISPATCHED until its crew reports en route."""
    return status_text(unit_state(unit.status, unit.en_route_reported), styles)


def _nature_and_next(call: CallView) -> Text:
    """A pending call's nature, and the busy units lined up to come to it (`M3 next`)."""
    if not call.queued_units:
        return Text(call.nature)
    text = Text(f"{', '.join(call.queued_units)} next ", style="bold cyan")
    text.append(call.nature)
    return text


def hazard_text(call: CallView) -> Text:
    """`HAZARD` when the call's address has a hazard note in force, else nothing."""
    return _HAZARD if call.hazard else _NONE


def place_flags(call: CallView) -> Text:
    """What the desk must know of where a call is, loudly and in words: `HAZARD` (a hazard note
    in force there), `UNVERIFIED` (the gazetteer did not verify its location: its position may
    be wrong, or it has none), both, or nothing."""
    if call.location_verified:
        return hazard_text(call)
    return _HAZARD_UNVERIFIED if call.hazard else _UNVERIFIED


def position_text(unit: UnitView, now: datetime | None, stale_seconds: int) -> Text:
    """`STALE 23m` when the unit's reported position is too old to trust by `now`, else nothing
    (a unit with no position is measured from its station, as the recommendation says)."""
    if not norms.position_stale(unit.position_at, now, stale_seconds):
        return _NONE
    age = norms.position_age(unit.position_at, now) or 0.0
    return Text(f"STALE {minutes(age)}", style="bold yellow")


def _call_and_next(unit: UnitView) -> Text:
    """The unit's call, and the one it is lined up for (`C-1001 → C-1003`)."""
    text = Text(unit.call_number or "")
    if unit.queued_call:
        text.append(f" → {unit.queued_call}", style="bold cyan")
    return text


def only(action: str, doing: str) -> str:
    """Why an operator whose role may not do `action` cannot: who may."""
    allowed = " or ".join(
        permissions.article(r.value) for r in sorted(permissions.PERMISSIONS[action])
    )
    crew = " (or its own crew)" if action in permissions.OWN_UNIT_ACTIONS else ""
    return f"only {allowed}{crew} may {doing}"


@cache
def _own_actions(pane: type[Pane[Any]]) -> frozenset[str]:
    """The actions a pane's own keys run (the ones `refusal` answers for)."""
    return frozenset(parse_action(b.action)[1] for b in pane.BINDINGS if isinstance(b, Binding))


class Pane(KeyedTable[Row]):
    """A titled table of domain rows whose keys act on the selected row.

    A key posts `Pane.Action` (the action's name, the row, its argument); the screen decides what
    it means. `permit` says whether the operator's role allows an action on a row, so the footer
    shows only the keys that apply.
    """

    class Action(Message):
        def __init__(self, pane: Pane[Any], action: str, row: Any, argument: str = "") -> None:
            super().__init__()
            self.pane = pane
            self.action = action
            self.row = row
            self.argument = argument

    # What a row is called, for "no unit selected".
    NOUN: ClassVar[str] = "row"
    # Every pane: the first and the last row (DataTable's own actions, which move the cursor).
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("home,g", "scroll_top", "First row", show=False, tooltip="also g"),
        Binding("end,G", "scroll_bottom", "Last row", show=False, tooltip="also G"),
    ]

    def __init__(self, title: str, styles: dict[str, str], **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        # The pane's name; its border says it with how many rows it holds (`count_words`), so
        # rows scrolled out of view are never hidden without a word.
        self.pane_title = title
        self.border_title = title
        self.styles_by_status = styles
        # Whether the operator's role allows an action (service action name, selected row).
        self.permit: Callable[[str, Any], bool] = lambda action, row: True
        # What the footer was last told about this pane's keys (None: not known to be current).
        self._keys_shown: tuple[bool | None, ...] | None = None

    @runtime_checkable
    class Host(Protocol):
        """A screen that acts on its panes' keys at once (see `act`)."""

        def on_pane_action(self, event: Pane.Action) -> None: ...

    @runtime_checkable
    class Feedback(Protocol):
        """A screen with a feedback line, where a refused key says why."""

        def say(self, message: str, *, ok: bool) -> None: ...

    # -- which keys apply, and why not ----------------------------------------------------------

    def refusal(self, action: str, parameters: tuple[object, ...]) -> str | None:
        """Why this pane's `action` does not apply to the selected row, in one line; None when it
        does. The footer hides a key with a refusal, and the key pressed anyway says it."""
        return None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action not in _own_actions(type(self)):
            return True  # the table's own keys (the cursor's)
        return self.refusal(action, parameters) is None

    def refuse(self, reason: str) -> None:
        """Say on the screen's feedback line why a key did nothing."""
        screen = self.screen
        if isinstance(screen, Pane.Feedback):
            screen.say(reason, ok=False)
        else:
            self.notify(reason, severity="warning")

    def on_key(self, event: events.Key) -> None:
        """A key of this pane that does not apply to the selected row says why.

        The focused pane sees a key before the bindings are looked up (they are, once the key
        has bubbled up to the app), so a key its bindings would skip in silence is answered here
        and goes no further; a key that applies goes on to its binding."""
        reasons = []
        for binding in type(self).BINDINGS:
            if isinstance(binding, Binding) and event.key in binding.key.split(","):
                action, parameters = parse_action(binding.action)[1:]
                reason = self.refusal(action, parameters)
                if reason is None:
                    return
                reasons.append(reason)
        if reasons:
            event.stop()
            event.prevent_default()
            self.refuse(reasons[0])

    def none_selected(self) -> str:
        return f"no {self.NOUN} selected"

    def act(self, action: str, argument: str = "") -> None:
        """Ask the screen to do `action` to the selected row.

        A host screen handles it before this key returns: the app runs a key's action before it
        routes the next key, so what a fast typist sends next (the Enter of `d` Enter) lands
        where the action sends it (the list of units), not on this pane. A posted message would
        be handled only after the next key had already reached the pane. Any other parent gets
        the message posted as usual.
        """
        row = self.selected
        if row is None:
            return
        # The command palette calls this directly, past the footer's checks.
        reason = self.refusal(action, (argument,) if argument else ())
        if reason is not None:
            self.refuse(reason)
            return
        message = self.Action(self, action, row, argument)
        screen = self.screen
        if isinstance(screen, Pane.Host):
            screen.on_pane_action(message)
        else:
            self.post_message(message)

    def rows_changed(self) -> None:
        words = self.count_words()
        title = f"{self.pane_title} · {words}" if words else self.pane_title
        if title != self.border_title:
            self.border_title = title
        self._refresh_keys()

    def count_words(self) -> str | None:
        """What the border says after the pane's name: how many rows (None: nothing)."""
        return f"{len(self.rows_by_key):,}"

    def age(self, since: datetime | None) -> float:
        if since is None or self.now is None:
            return 0.0
        return (self.now - since).total_seconds()

    def keys_allowed(self) -> tuple[bool | None, ...]:
        """Which of this pane's own keys apply to the selected row (what its footer shows)."""
        allowed = []
        for binding in type(self).BINDINGS:
            if isinstance(binding, Binding):
                _, action, parameters = parse_action(binding.action)
                allowed.append(self.check_action(action, parameters))
        return tuple(allowed)

    def _refresh_keys(self) -> None:
        """Rebuild the footer only when the keys it shows for this pane changed.

        Only the focused pane's keys are in the footer, and Textual rebuilds the footer itself
        when the focus moves. A rebuild re-mounts every key in it, which costs more than
        repainting a pane, so a change that leaves the keys as they were does not ask for one.
        """
        if not self.has_focus:
            self._keys_shown = None
            return
        allowed = self.keys_allowed()
        if allowed != self._keys_shown:
            self._keys_shown = allowed
            self.refresh_bindings()

    def on_focus(self) -> None:
        # Textual rebuilds the footer itself when the focus moves, with what applies now.
        self._keys_shown = self.keys_allowed()

    def on_data_table_row_highlighted(self) -> None:
        self._refresh_keys()


# The keys of every call, in the pending and the active pane alike.
CALL_KEYS: list[BindingType] = [
    Binding(
        "i", "record", "Record", id="record", tooltip="every field, units, timeline; also Enter"
    ),
    Binding("enter", "record", "Record", show=False),
    Binding("N", "note", "Note", id="note", tooltip="a line in the call's narrative"),
    Binding("u", "edit", "Edit", id="edit", tooltip="priority, nature, location, caller"),
]


class CallPane(Pane[CallView]):
    """A pane of calls: the keys every call has (its record, a note, an edit)."""

    def action_record(self) -> None:
        self.act("record")

    def action_note(self) -> None:
        self.act("note")

    def action_edit(self) -> None:
        self.act("edit")


def call_key_refusal(pane: Pane[CallView], action: str, row: CallView) -> str | None:
    """Why a call key does not apply ('' when it does); None for any other key."""
    if action == "record":
        return ""
    if action == "note":
        return "" if pane.permit("note", row) else only("note", "add to a call's narrative")
    if action == "edit":
        return "" if pane.permit("update_call", row) else only("update_call", "change a call")
    return None


class PendingCalls(CallPane):
    NOUN = "pending call"
    COLUMNS = (
        ("call", "Call", None),
        ("p", "P", 2),
        ("age", "Age", 7),
        ("flag", "Flag", 7),
        ("nature", "Nature", None),
        ("place", "Place", None),
        # HAZARD, UNVERIFIED beside the place it is at; never cut (the place gives way first).
        ("hazard", "", None),
    )
    # Narrow: the place and the nature are cut, in turns, never below 5 characters and "…".
    FIT = (
        ("place", 16),
        ("nature", 16),
        ("place", 10),
        ("nature", 10),
        ("place", 6),
        ("nature", 6),
    )
    TIME_COLUMNS = frozenset({"age", "flag"})
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "d",
            "dispatch",
            "Dispatch",
            id="dispatch",
            tooltip="recommended units, nearest first; Enter sends the top one",
        ),
        *CALL_KEYS,
        Binding("x", "cancel_call", "Cancel", id="cancel-call", tooltip="asks why first"),
    ]

    def __init__(self, styles: dict[str, str], aging: dict[int, int], **kwargs: Any) -> None:
        super().__init__("Pending calls", styles, **kwargs)
        self.aging = aging

    def accepts(self, row: CallView) -> bool:
        return row.status == "RECEIVED"

    def sort_key(self, row: CallView) -> Any:
        return (row.priority, row.received_at, row.id)

    def time_cells(self, row: CallView) -> tuple[Text, ...]:
        age = self.age(row.received_at)
        overdue = age > self.aging.get(row.priority, 1800)
        # One flag, by text and colour: the call-processing clock against 60 s (NFPA 1225) while
        # it runs, LATE past it, OVERDUE past the priority's aging threshold, AGAIN for a call
        # pending again after a dispatch.
        if overdue:
            flag = _OVERDUE
        elif row.first_dispatched_at is not None:
            # Pending again: its units were diverted or cancelled (or it was re-opened). Its
            # call-processing clock stopped at its first dispatch; say loudly that it is back.
            flag = _AGAIN
        elif age > PROCESSING_GOAL_SECONDS:
            flag = _LATE
        else:
            flag = Text(f"{int(age)}/60s")
        return Text(clock(age), style="bold red" if overdue else ""), flag

    def cells(self, row: CallView) -> tuple[Text, ...]:
        return (
            Text(row.number, style="bold"),
            _PRIORITY.get(row.priority) or Text(f"P{row.priority}"),
            *self.clock_cells(row),
            _nature_and_next(row),
            Text(row.location_text),
            place_flags(row),
        )

    def action_dispatch(self) -> None:
        self.act("dispatch")

    def action_cancel_call(self) -> None:
        self.act("cancel_call")

    def refusal(self, action: str, parameters: tuple[object, ...]) -> str | None:
        row = self.selected
        if row is None:
            return self.none_selected()
        said = call_key_refusal(self, action, row)
        if said is not None:
            return said or None
        if action == "dispatch" and not self.permit("dispatch", row):
            return only("dispatch", "dispatch")
        if action == "cancel_call" and not self.permit("cancel", row):
            return only("cancel", "cancel a call")
        return None


def unit_times(
    call: CallView, now: datetime | None, form: str = "long", ack_seconds: int = norms.ACK_SECONDS
) -> str:
    """Each active unit of a call with its state and time in it (desk and board alike), in
    words (`M1 dispatched 0:40`), in the bar's short words (`short`: `M1 disp 0:40`), or in
    short words without the time (`narrow`: `M1 disp`; the Units pane beside shows it). A crew
    alert that failed, or a dispatch not acknowledged in time, is said after the unit in
    capitals (`M1 disp 0:40 NO ACK`), whatever the form."""
    parts = []
    for a in call.assignments:
        if not a.active:
            continue
        reported = a.en_route_at is not None
        state = (
            unit_label(a.unit_status, reported)
            if form == "long"
            else unit_short(a.unit_status, reported)
        )
        time = (
            "" if form == "narrow" or now is None else clock((now - a.status_since).total_seconds())
        )
        alert = norms.alert_words(a, now, ack_seconds)
        parts.append(" ".join(x for x in (a.unit_code, state, time, alert) if x))
    return " · ".join(parts)


class ActiveCalls(CallPane):
    NOUN = "active call"
    COLUMNS = (
        ("call", "Call", None),
        ("p", "P", 2),
        ("status", "Status", 12),
        ("units", "Units", None),
        ("nature", "Nature", None),
        ("hazard", "", None),  # never cut: the nature gives way first
        ("dest", "Dest", None),
    )
    # Narrow: the nature is cut; then the call's status goes (its units' states say it: a call
    # is as far as its most advanced unit); then the nature is cut further. Every unit stays.
    FIT = (("nature", 16), ("status", 0), ("nature", 6))
    # How much room the units' cell gets its words, and its times, at (see `unit_times`).
    FORMS = ((130, "long"), (80, "short"), (0, "narrow"))
    TIME_COLUMNS = frozenset({"units"})
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "add_unit", "Add unit", id="add-unit", tooltip="recommended units"),
        *CALL_KEYS,
        Binding("c", "close_call", "Close", id="close-call", tooltip="once a unit reached it"),
        Binding("x", "cancel_call", "Cancel", id="cancel-call", tooltip="asks; releases its units"),
    ]

    def __init__(
        self, styles: dict[str, str], ack_seconds: int = norms.ACK_SECONDS, **kwargs: Any
    ) -> None:
        super().__init__("Active calls", styles, **kwargs)
        self.form = "short"
        self.ack_seconds = ack_seconds

    def on_resize(self) -> None:
        room = self._room()
        form = next(form for least, form in self.FORMS if room >= least)
        if form != self.form:
            self.form = form
            self.remeasure()
        super().on_resize()

    def accepts(self, row: CallView) -> bool:
        return row.status in _ACTIVE

    def sort_key(self, row: CallView) -> Any:
        return (row.priority, row.received_at, row.id)

    def time_cells(self, row: CallView) -> tuple[Text, ...]:
        return (Text(unit_times(row, self.now, self.form, self.ack_seconds)),)

    def cells(self, row: CallView) -> tuple[Text, ...]:
        return (
            Text(row.number, style="bold"),
            Text(f"P{row.priority}"),
            status_text(row.status, self.styles_by_status),
            *self.clock_cells(row),
            Text(row.nature),
            place_flags(row),
            Text(row.destination_code or ""),
        )

    def action_add_unit(self) -> None:
        self.act("add_unit")

    def action_close_call(self) -> None:
        self.act("close_call")

    def action_cancel_call(self) -> None:
        self.act("cancel_call")

    def refusal(self, action: str, parameters: tuple[object, ...]) -> str | None:
        row = self.selected
        if row is None:
            return self.none_selected()
        said = call_key_refusal(self, action, row)
        if said is not None:
            return said or None
        if action == "close_call":
            if not self.permit("close_call", row):
                return only("close_call", "close a call")
            if row.status == CallStatus.DISPATCHED:
                # What the service answers, before asking it (service.close_call).
                return f"no unit has reached {row.number} yet; cancel it instead (x)"
        if action == "add_unit" and not self.permit("dispatch", row):
            return only("dispatch", "dispatch")
        if action == "cancel_call" and not self.permit("cancel", row):
            return only("cancel", "cancel a call")
        return None


# unit key -> (target status, footer label, what the help says)
UNIT_KEYS = (
    ("e", UnitStatus.EN_ROUTE, "En route", "the crew's en-route report"),
    ("o", UnitStatus.ON_SCENE, "On scene", "arrived"),
    ("t", UnitStatus.TRANSPORTING, "Transport", "asks the destination, nearest first"),
    ("h", UnitStatus.AT_HOSPITAL, "At hosp", "arrived at the destination"),
    ("v", UnitStatus.AVAILABLE, "Available", "clears the unit; back from out of service"),
    ("s", UnitStatus.OUT_OF_SERVICE, "Out of svc", "only when not on a call"),
)


class Units(Pane[UnitView]):
    NOUN = "unit"
    COLUMNS = (
        ("unit", "Unit", None),
        ("cap", "Cap", None),
        ("status", "Status", 12),
        ("since", "Time", 6),
        ("call", "Call", None),
        ("station", "Stn", None),
        # `STALE 23m` when its reported position is too old to trust; it ages with the clock.
        ("pos", "Pos", None),
    )
    # Narrow: the home station goes first, then a stale position's age ("STALE…" stays).
    FIT = (("station", 0), ("pos", 6))
    TIME_COLUMNS = frozenset({"since", "pos"})
    BINDINGS: ClassVar[list[BindingType]] = [
        *(
            Binding(
                key,
                f"status('{target.value}')",
                text,
                id=f"unit-{target.value.lower()}",
                tooltip=what,
            )
            for key, target, text, what in UNIT_KEYS
        ),
        Binding("x", "cancel_unit", "Cancel unit", id="cancel-unit", tooltip="before it arrives"),
        Binding(
            "r",
            "divert",
            "Divert",
            id="divert",
            tooltip="to another call, most urgent first (en route or at the hospital)",
        ),
        Binding(
            "l",
            "line_up",
            "Next call",
            id="line-up",
            tooltip="line up a pending call for when it clears (again: take it back)",
        ),
    ]

    def __init__(
        self,
        styles: dict[str, str],
        stale_seconds: int = norms.STALE_POSITION_SECONDS,
        **kwargs: Any,
    ) -> None:
        super().__init__("Units", styles, **kwargs)
        self.stale_seconds = stale_seconds

    def count_words(self) -> str | None:
        free = sum(1 for u in self.rows_by_key.values() if u.status == UnitStatus.AVAILABLE)
        return f"{free:,} of {len(self.rows_by_key):,} available"

    def sort_key(self, row: UnitView) -> Any:
        return (row.code[0], len(row.code), row.code)

    def time_cells(self, row: UnitView) -> tuple[Text, ...]:
        return (
            Text(minutes(self.age(row.status_since))),
            position_text(row, self.now, self.stale_seconds),
        )

    def cells(self, row: UnitView) -> tuple[Text, ...]:
        since, position = self.clock_cells(row)
        return (
            Text(row.code, style="bold"),
            Text(row.capability),
            unit_status_text(row, self.styles_by_status),
            since,
            _call_and_next(row),
            Text(row.station_code or ""),
            position,
        )

    def action_status(self, target: str) -> None:
        self.act("status", target)

    def action_cancel_unit(self) -> None:
        self.act("cancel_unit")

    def action_divert(self) -> None:
        self.act("divert")

    def action_line_up(self) -> None:
        self.act("line_up")

    def refusal(self, action: str, parameters: tuple[object, ...]) -> str | None:
        row = self.selected
        if row is None:
            return self.none_selected()
        if action == "status":
            if not self.permit("unit_status", row):
                return only("unit_status", "change a unit's status")
            current, target = UnitStatus(row.status), UnitStatus(str(parameters[0]))
            try:
                # The lifecycle's own answer: the one the service would give.
                unit_step(row.code, current, target, row.en_route_reported)
            except Conflict as refused:
                return refused.message
        if action == "cancel_unit":
            if not self.permit("cancel", row):
                return only("cancel", "cancel a unit")
            if row.call_number is None:
                return f"{row.code} is not on a call"
            if row.status != UnitStatus.EN_ROUTE:
                state = unit_label(row.status, row.en_route_reported)
                return f"{row.code} is {state}; clear it (v) instead of cancelling"
        if action == "line_up":
            if not self.permit("dispatch", row):
                return only("dispatch", "line up a unit's next call")
            if row.call_number is None and row.queued_call is None:
                return f"{row.code} is {unit_label(row.status, row.en_route_reported)}: dispatch it now"
        if action == "divert":
            if not self.permit("dispatch", row):
                return only("dispatch", "divert a unit")
            if row.call_number is None:
                return f"{row.code} is on no call: dispatch it to one (d on the call)"
            if row.status not in (UnitStatus.EN_ROUTE, UnitStatus.AT_HOSPITAL):
                state = unit_label(row.status, row.en_route_reported)
                return f"{row.code} is {state}: a unit with its patient is not diverted"
        return None


_HOSPITAL_WORDS = {"OPEN": "open", "DIVERSION": "on diversion", "CLOSED": "closed"}


class Hospitals(Pane[HospitalView]):
    NOUN = "hospital"
    COLUMNS = (
        ("code", "Code", None),
        ("status", "Status", 9),
        ("beds", "Beds", None),
        ("caps", "Capabilities", None),
    )
    FIT = (("caps", 8),)
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("o", "hospital('OPEN')", "Open", id="hospital-open", tooltip="takes ambulances"),
        Binding(
            "v",
            "hospital('DIVERSION')",
            "Diversion",
            id="hospital-diversion",
            tooltip="transports there need an override",
        ),
        Binding("c", "hospital('CLOSED')", "Closed", id="hospital-closed", tooltip="to ambulances"),
        Binding("b", "beds", "Beds", id="hospital-beds", tooltip="beds available, in the bar"),
    ]

    def __init__(self, styles: dict[str, str], **kwargs: Any) -> None:
        super().__init__("Hospitals", styles, **kwargs)

    def count_words(self) -> str | None:
        """The hospitals not taking ambulances as usual, counted; nothing when all are open."""
        counted = Counter(h.status for h in self.rows_by_key.values())
        words = [
            f"{counted[status]} {'on diversion' if status == HospitalStatus.DIVERSION else label(status)}"
            for status in (HospitalStatus.DIVERSION, HospitalStatus.CLOSED)
            if counted[status]
        ]
        return ", ".join(words) or None

    def sort_key(self, row: HospitalView) -> Any:
        return row.code

    def cells(self, row: HospitalView) -> tuple[Text, ...]:
        return (
            Text(row.code, style="bold"),
            status_text(row.status, self.styles_by_status),
            Text("" if row.beds_available is None else str(row.beds_available)),
            Text(", ".join(row.capabilities)),
        )

    def action_hospital(self, status: str) -> None:
        self.act("hospital", status)

    def action_beds(self) -> None:
        self.act("beds")

    def refusal(self, action: str, parameters: tuple[object, ...]) -> str | None:
        row = self.selected
        if row is None:
            return self.none_selected()
        if action == "hospital":
            if not self.permit("hospital_status", row):
                return only("hospital_status", "change a hospital's status")
            if row.status == parameters[0]:
                return f"{row.code} is already {_HOSPITAL_WORDS.get(row.status, row.status)}"
        if action == "beds" and not self.permit("hospital_status", row):
            return only("hospital_status", "change a hospital's beds")
        return None
