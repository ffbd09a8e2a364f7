"""How the CLI prints results: Rich tables for people, JSON for scripts.

Every value that came from the database is wrapped in `rich.text.Text`, so a caller named
`[bold]x` prints literally instead of being read as markup.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from dispatch_tui.rules.views import (
    AuditView,
    CallView,
    HospitalView,
    PlaceView,
    Recommendation,
    UnitView,
    to_jsonable,
)
from dispatch_tui.service.executor import Outcome


def _t(value: object) -> Text:
    return Text("" if value is None else str(value))


def _time(value: datetime | None) -> Text:
    return Text(value.astimezone().strftime("%H:%M:%S") if value else "—")


def _table(*columns: str) -> Table:
    table = Table(show_edge=False, pad_edge=False, header_style="bold")
    for column in columns:
        table.add_column(column)
    return table


def json_document(outcome: Outcome) -> str:
    document = {"ok": True, "message": outcome.message, outcome.kind: to_jsonable(outcome.data)}
    if outcome.total is not None:  # a list that may be cut on purpose says whether it was
        document |= {"truncated": outcome.truncated, "total": outcome.total}
    if outcome.request_id is not None:  # a write: its id, and whether a retry found it done
        document |= {"request_id": outcome.request_id, "done_before": outcome.done_before}
    return json.dumps(document)


def print_outcome(console: Console, outcome: Outcome) -> None:
    data = outcome.data
    if outcome.kind == "call":
        _call(console, data)
    elif outcome.kind == "calls":
        table = _table("Call", "P", "Status", "Received", "Nature", "Location", "Units")
        for c in data:
            table.add_row(
                _t(c.number),
                _t(c.priority),
                _t(c.status),
                _time(c.received_at),
                _t(c.nature),
                _t(c.location_text),
                _t(", ".join(c.active_units)),
            )
        console.print(table)
    elif outcome.kind in ("units", "unit"):
        table = _table("Unit", "Cap", "Status", "Since", "Call", "Station", "Position")
        for u in data if isinstance(data, list) else [data]:
            assert isinstance(u, UnitView)
            pos = f"{u.lat:.4f}, {u.lon:.4f}" if u.lat is not None and u.lon is not None else "—"
            table.add_row(
                _t(u.code),
                _t(u.capability),
                _t(u.status),
                _time(u.status_since),
                _t(u.call_number or ""),
                _t(u.station_code or ""),
                _t(pos),
            )
        console.print(table)
        if outcome.kind == "unit":
            console.print(_t(outcome.message))
    elif outcome.kind in ("hospitals", "hospital"):
        table = _table("Hospital", "Name", "Status", "Beds", "Capabilities")
        for h in data if isinstance(data, list) else [data]:
            assert isinstance(h, HospitalView)
            table.add_row(
                _t(h.code),
                _t(h.name),
                _t(h.status),
                _t("" if h.beds_available is None else h.beds_available),
                _t(", ".join(h.capabilities)),
            )
        console.print(table)
    elif outcome.kind == "places":
        table = _table("Place", "Address", "Position")
        for p in data:
            assert isinstance(p, PlaceView)
            table.add_row(_t(p.name), _t(p.address), _t(f"{p.lat:.4f}, {p.lon:.4f}"))
        console.print(table)
    elif outcome.kind == "recommendations":
        table = _table("#", "Unit", "Cap", "ETA", "Why")
        for r in data:
            assert isinstance(r, Recommendation)
            eta = f"{round(r.eta_seconds / 60)} min" if r.eta_seconds is not None else "?"
            table.add_row(_t(r.rank), _t(r.unit.code), _t(r.unit.capability), _t(eta), _t(r.reason))
        console.print(table if data else _t(outcome.message))
    elif outcome.kind == "audit":
        table = _table("When", "Operator", "Desk", "Action", "Call", "Unit", "Details")
        for a in data:
            assert isinstance(a, AuditView)
            details = ", ".join(f"{k}={v}" for k, v in a.details.items() if v not in (None, ""))
            table.add_row(
                _time(a.at),
                _t(a.operator),
                _t(a.desk),
                _t(a.action),
                _t(a.call_number or ""),
                _t(a.unit_code or a.hospital_code or ""),
                _t(details),
            )
        console.print(table)
    else:
        console.print(_t(outcome.message))
    if outcome.truncated:
        # Below the table, where the eye ends: "showing the newest 500 of 8,214 calls; ..."
        console.print(_t(outcome.message))


def _call(console: Console, call: CallView) -> None:
    head = Text()
    head.append(f"{call.number}  P{call.priority}", style="bold")
    if call.determinant:
        head.append(f" {call.determinant}")
    head.append(f"  {call.status}  ")
    head.append(call.nature)
    console.print(head)
    lines: list[tuple[str, Any]] = [
        ("Location", call.location_text),
        ("Caller", " ".join(x for x in (call.caller_name, call.caller_phone) if x)),
        ("Received", _time(call.received_at)),
        ("Dispatched", _time(call.first_dispatched_at)),
        ("Destination", call.destination_code or "—"),
    ]
    if call.notes:
        lines.append(("Notes", call.notes))
    if call.disposition:
        lines.append(("Disposition", call.disposition))
    for label, value in lines:
        console.print(Text(f"  {label:<12}") + (value if isinstance(value, Text) else _t(value)))
    if call.assignments:
        table = _table(
            "Unit", "Status", "Notified", "En route", "On scene", "Transport", "At dest", "Cleared"
        )
        for a in call.assignments:
            table.add_row(
                _t(a.unit_code),
                _t(a.unit_status),
                _time(a.notified_at),
                _time(a.en_route_at),
                _time(a.on_scene_at),
                _time(a.transporting_at),
                _time(a.at_destination_at),
                _time(a.cleared_at or a.cancelled_at),
            )
        console.print(table)
