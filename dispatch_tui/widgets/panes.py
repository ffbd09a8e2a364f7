"""The desk's four panes: pending calls, active calls, units, hospitals.

Each pane is a DataTable keyed by primary key and diffed in place: stale keys removed, only
changed cells updated (and only their rows redrawn), new rows added, re-sorted only when the order
changed, the cursor kept on the same row. Text that came from the database goes in as
`rich.text.Text`, so it is shown as data, never as markup. Each pane owns the single-key actions
for its selected row and hides the ones that do not apply; the footer is rebuilt only when those
change.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, ClassVar, Generic, TypeVar

from rich.text import Text
from textual.actions import parse as parse_action
from textual.binding import Binding, BindingType
from textual.widgets.data_table import CellDoesNotExist, RowDoesNotExist

from dispatch_tui.rules.enums import UnitStatus
from dispatch_tui.rules.lifecycle import UNIT_STEPS, label
from dispatch_tui.rules.norms import clock
from dispatch_tui.rules.views import CallView, HospitalView, UnitView
from dispatch_tui.widgets.row_table import RowTable, same

Row = TypeVar("Row", CallView, UnitView, HospitalView)

PROCESSING_GOAL = 60  # NFPA 1225: answer -> first unit dispatched, 90% within 60 s


def minutes(seconds: float) -> str:
    """Time in status to the minute: the units pane can hold hundreds of rows, and a clock
    that changes every second would repaint every one of them every second."""
    whole = max(0, int(seconds)) // 60
    return "<1m" if whole == 0 else f"{whole}m" if whole < 60 else f"{whole // 60}h{whole % 60:02d}"


SHORT_STATUS = {"OUT_OF_SERVICE": "OUT OF SVC"}


def status_text(status: str, styles: dict[str, str]) -> Text:
    """A status as words (never colour alone) in its configured colour."""
    return Text(SHORT_STATUS.get(status, status.replace("_", " ")), style=styles.get(status, ""))


class Pane(RowTable, Generic[Row]):
    """A table of domain rows keyed by id, updated in place."""

    COLUMNS: ClassVar[Sequence[tuple[str, str, int | None]]] = ()  # (key, label, width)
    TIME_COLUMNS: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, title: str, styles: dict[str, str], **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.border_title = title
        self.styles_by_status = styles
        self.rows_by_key: dict[str, Row] = {}
        self.now: datetime | None = None
        # Whether the operator's role allows an action (service action name, selected row).
        self.permit: Callable[[str, Any], bool] = lambda action, row: True
        # What the footer was last told about this pane's keys (None: not known to be current).
        self._keys_shown: tuple[bool | None, ...] | None = None
        # Where the clock's cells sit in a row, in COLUMNS order.
        self._time_at = tuple(
            i for i, (key, _, _) in enumerate(self.COLUMNS) if key in self.TIME_COLUMNS
        )

        # Columns exist from the start: a snapshot can arrive before the pane is mounted, and
        # rows added to a table without columns would size every column by its header alone.
        for key, title, width in self.COLUMNS:
            self.add_column(title, key=key, width=width)

    # -- what a subclass says ----------------------------------------------------------------

    def accepts(self, row: Row) -> bool:
        return True

    def cells(self, row: Row) -> tuple[Text, ...]:
        raise NotImplementedError

    def time_cells(self, row: Row) -> tuple[Text, ...]:
        """The cells of TIME_COLUMNS alone, in COLUMNS order: all the clock changes."""
        cells = self.cells(row)
        return tuple(cells[i] for i in self._time_at)

    def sort_key(self, row: Row) -> Any:
        return row.id

    # -- keeping the table in step ------------------------------------------------------------

    @property
    def selected(self) -> Row | None:
        if not self.row_count:
            return None
        try:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        except CellDoesNotExist:
            return None
        return self.rows_by_key.get(key or "")

    def sync(self, rows: Iterable[Row], *, full: bool, now: datetime) -> None:
        """Apply fresh rows. Full: rows not given are gone. Partial: only the given rows change."""
        self.now = now
        kept_key = self._selected_key()
        given = {str(r.id): r for r in rows}
        stale = [
            k
            for k in self.rows_by_key
            if (full and k not in given) or (k in given and not self.accepts(given[k]))
        ]
        for key in stale:
            self._remove(key)
        moved = bool(stale)
        order_changed = False
        added: list[str] = []
        changed: dict[str, tuple[Text, ...]] = {}
        for key, row in given.items():
            if not self.accepts(row):
                continue
            cells = self.cells(row)
            old = self.rows_by_key.get(key)
            if old is None:
                added.append(key)
                self._cells[key] = cells
            else:
                changed[key] = cells
                order_changed = order_changed or self.sort_key(old) != self.sort_key(row)
            self.rows_by_key[key] = row
        self.rewrite(changed)
        if added:
            # New rows go in sorted among themselves: into an empty table (the first load) they
            # then need no sort at all.
            order_changed = order_changed or self.row_count > 0
            moved = True
            added.sort(key=lambda k: self.sort_key(self.rows_by_key[k]))
            for key in added:
                self.add_row(*self._cells[key], key=key)
        if order_changed and self._sort():
            moved = True
        if moved:
            self._restore(kept_key)
        self._refresh_keys()

    def tick(self, now: datetime) -> None:
        """Advance the running clocks: only the time columns are touched."""
        self.now = now
        at = self._time_at
        if not at:
            return
        changed: dict[str, tuple[Text, ...]] = {}
        for key, row in self.rows_by_key.items():
            times = self.time_cells(row)
            cells = self._cells[key]
            if any(not same(new, cells[i]) for new, i in zip(times, at, strict=True)):
                fresh = list(cells)
                for new, i in zip(times, at, strict=True):
                    fresh[i] = new
                changed[key] = tuple(fresh)
        self.rewrite(changed)

    def _sort(self) -> bool:
        """Put the rows in sort_key order; False (and nothing repainted) if they already are."""
        if self.row_count < 2:
            return False
        wanted = sorted(self.rows_by_key, key=lambda k: self.sort_key(self.rows_by_key[k]))
        if [row.key.value for row in self.ordered_rows] == wanted:
            return False
        rank = {self._cells[k][0].plain: i for i, k in enumerate(wanted)}
        self.sort(self.COLUMNS[0][0], key=lambda cell: rank.get(cell.plain, 0))
        return True

    def _remove(self, key: str) -> None:
        with contextlib.suppress(RowDoesNotExist):
            self.remove_row(key)
        self.rows_by_key.pop(key, None)
        self._cells.pop(key, None)

    def _selected_key(self) -> str | None:
        row = self.selected
        return str(row.id) if row is not None else None

    def _restore(self, key: str | None) -> None:
        if key is not None and key in self.rows_by_key:
            self.move_cursor(row=self.get_row_index(key), animate=False)

    def select_id(self, row_id: int) -> bool:
        key = str(row_id)
        if key in self.rows_by_key:
            self.move_cursor(row=self.get_row_index(key), animate=False)
            return True
        return False

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


class PendingCalls(Pane[CallView]):
    COLUMNS = (
        ("call", "Call", 7),
        ("p", "P", 2),
        ("age", "Age", 7),
        ("flag", "Flag", 7),
        ("nature", "Nature", None),
        ("place", "Place", None),
    )
    TIME_COLUMNS = frozenset({"age", "flag"})
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("d", "dispatch", "Dispatch", id="dispatch"),
        Binding("enter", "dispatch", "Dispatch", show=False),
        Binding("x", "cancel_call", "Cancel call", id="cancel-call"),
    ]

    def __init__(self, styles: dict[str, str], aging: dict[int, int], **kwargs: Any) -> None:
        super().__init__("Pending calls", styles, **kwargs)
        self.aging = aging
        self.on_action: Callable[[str], None] = lambda action: None

    def accepts(self, row: CallView) -> bool:
        return row.status == "RECEIVED"

    def sort_key(self, row: CallView) -> Any:
        return (row.priority, row.received_at, row.id)

    def time_cells(self, row: CallView) -> tuple[Text, ...]:
        age = self.age(row.received_at)
        overdue = age > self.aging.get(row.priority, 1800)
        # One flag, by text and colour: the call-processing clock against 60 s (NFPA 1225) while
        # it runs, LATE past it, OVERDUE past the priority's aging threshold.
        if overdue:
            flag = Text("OVERDUE", style="bold reverse red")
        elif age > PROCESSING_GOAL:
            flag = Text("LATE", style="bold red")
        else:
            flag = Text(f"{int(age)}/60s")
        return Text(clock(age), style="bold red" if overdue else ""), flag

    def cells(self, row: CallView) -> tuple[Text, ...]:
        return (
            Text(row.number, style="bold"),
            Text(f"P{row.priority}", style="bold red" if row.priority == 1 else ""),
            *self.time_cells(row),
            Text(row.nature),
            Text(row.location_text),
        )

    def action_dispatch(self) -> None:
        self.on_action("dispatch")

    def action_cancel_call(self) -> None:
        self.on_action("cancel_call")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("dispatch", "cancel_call"):
            row = self.selected
            return row is not None and self.permit(
                "dispatch" if action == "dispatch" else "cancel", row
            )
        return True


def unit_times(call: CallView, now: datetime | None) -> str:
    """Each active unit of a call with its status and time in status (desk and board alike)."""
    return " · ".join(
        f"{a.unit_code} {label(a.unit_status)} {clock((now - a.status_since).total_seconds()) if now else ''}"
        for a in call.assignments
        if a.active
    )


class ActiveCalls(Pane[CallView]):
    COLUMNS = (
        ("call", "Call", 7),
        ("p", "P", 2),
        ("status", "Status", 12),
        ("units", "Units: status, time in status", None),
        ("nature", "Nature", None),
        ("dest", "Dest", 6),
    )
    TIME_COLUMNS = frozenset({"units"})
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "add_unit", "Add unit", id="add-unit"),
        Binding("c", "close_call", "Close", id="close-call"),
        Binding("x", "cancel_call", "Cancel call", id="cancel-call"),
    ]

    def __init__(self, styles: dict[str, str], **kwargs: Any) -> None:
        super().__init__("Active calls", styles, **kwargs)
        self.on_action: Callable[[str], None] = lambda action: None

    def accepts(self, row: CallView) -> bool:
        return row.status not in ("RECEIVED", "CLOSED", "CANCELLED")

    def sort_key(self, row: CallView) -> Any:
        return (row.priority, row.received_at, row.id)

    def time_cells(self, row: CallView) -> tuple[Text, ...]:
        return (Text(unit_times(row, self.now)),)

    def cells(self, row: CallView) -> tuple[Text, ...]:
        return (
            Text(row.number, style="bold"),
            Text(f"P{row.priority}"),
            status_text(row.status, self.styles_by_status),
            *self.time_cells(row),
            Text(row.nature),
            Text(row.destination_code or ""),
        )

    def action_add_unit(self) -> None:
        self.on_action("add_unit")

    def action_close_call(self) -> None:
        self.on_action("close_call")

    def action_cancel_call(self) -> None:
        self.on_action("cancel_call")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        row = self.selected
        if action == "close_call":
            return row is not None and row.status != "DISPATCHED" and self.permit("close_call", row)
        if action in ("add_unit", "cancel_call"):
            return row is not None and self.permit(
                "dispatch" if action == "add_unit" else "cancel", row
            )
        return True


# unit key -> (action name, target status, footer label)
UNIT_KEYS = (
    ("e", "en_route", "EN_ROUTE", "En route"),
    ("o", "on_scene", "ON_SCENE", "On scene"),
    ("t", "transporting", "TRANSPORTING", "Transport"),
    ("h", "at_hospital", "AT_HOSPITAL", "At hosp"),
    ("v", "available", "AVAILABLE", "Available"),
    ("s", "out_of_service", "OUT_OF_SERVICE", "Out of svc"),
)


class Units(Pane[UnitView]):
    COLUMNS = (
        ("unit", "Unit", 5),
        ("cap", "Cap", 3),
        ("status", "Status", 12),
        ("since", "Time", 6),
        ("call", "Call", 7),
        ("station", "Stn", 3),
    )
    TIME_COLUMNS = frozenset({"since"})
    BINDINGS: ClassVar[list[BindingType]] = [
        *(
            Binding(key, f"status('{target}')", text, id=f"unit-{name}")
            for key, name, target, text in UNIT_KEYS
        ),
        Binding("x", "cancel_unit", "Cancel unit", id="cancel-unit"),
    ]

    def __init__(self, styles: dict[str, str], **kwargs: Any) -> None:
        super().__init__("Units", styles, **kwargs)
        self.on_action: Callable[[str, str], None] = lambda action, arg: None

    def sort_key(self, row: UnitView) -> Any:
        return (row.code[0], len(row.code), row.code)

    def time_cells(self, row: UnitView) -> tuple[Text, ...]:
        return (Text(minutes(self.age(row.status_since))),)

    def cells(self, row: UnitView) -> tuple[Text, ...]:
        return (
            Text(row.code, style="bold"),
            Text(row.capability),
            status_text(row.status, self.styles_by_status),
            *self.time_cells(row),
            Text(row.call_number or ""),
            Text(row.station_code or ""),
        )

    def action_status(self, target: str) -> None:
        self.on_action("status", target)

    def action_cancel_unit(self) -> None:
        self.on_action("cancel_unit", "")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        row = self.selected
        if action == "status":
            if row is None:
                return False
            current, target = UnitStatus(row.status), UnitStatus(str(parameters[0]))
            return (current, target) in UNIT_STEPS and self.permit("unit_status", row)
        if action == "cancel_unit":
            return (
                row is not None and row.status == UnitStatus.EN_ROUTE and self.permit("cancel", row)
            )
        return True


class Hospitals(Pane[HospitalView]):
    COLUMNS = (
        ("code", "Code", 6),
        ("status", "Status", 9),
        ("beds", "Beds", 4),
        ("caps", "Capabilities", None),
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("o", "hospital('OPEN')", "Open", id="hospital-open"),
        Binding("v", "hospital('DIVERSION')", "Diversion", id="hospital-diversion"),
        Binding("c", "hospital('CLOSED')", "Closed", id="hospital-closed"),
        Binding("b", "beds", "Beds", id="hospital-beds"),
    ]

    def __init__(self, styles: dict[str, str], **kwargs: Any) -> None:
        super().__init__("Hospitals", styles, **kwargs)
        self.on_action: Callable[[str, str], None] = lambda action, arg: None

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
        self.on_action("hospital", status)

    def action_beds(self) -> None:
        self.on_action("beds", "")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        row = self.selected
        if action == "hospital":
            return (
                row is not None
                and row.status != parameters[0]
                and self.permit("hospital_status", row)
            )
        if action == "beds":
            return row is not None and self.permit("hospital_status", row)
        return True
