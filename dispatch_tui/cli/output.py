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

from dispatch_tui.rules import norms
from dispatch_tui.rules.addresses import AddressMatch
from dispatch_tui.rules.lifecycle import unit_state
from dispatch_tui.rules.views import (
    AuditView,
    CallRecord,
    CallView,
    Found,
    HospitalView,
    PlaceView,
    PremiseView,
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


def _unit_json(unit: UnitView, stale_seconds: int) -> dict[str, Any]:
    """A unit as JSON, with whether its position is stale by the centre's setting (its age,
    `position_age`, is the view's own)."""
    data: dict[str, Any] = to_jsonable(unit)
    data["position_stale"] = norms.age_stale(unit.position_age, stale_seconds)
    return data


def json_document(outcome: Outcome, stale_seconds: int = norms.STALE_POSITION_SECONDS) -> str:
    """`outcome` as one JSON document; a unit in it says whether its position is older than
    `stale_seconds` (DISPATCH_STALE_POSITION_MINUTES)."""
    data = outcome.data
    shown: Any
    if isinstance(data, UnitView):
        shown = _unit_json(data, stale_seconds)
    elif isinstance(data, list) and data and all(isinstance(u, UnitView) for u in data):
        shown = [_unit_json(u, stale_seconds) for u in data]
    elif isinstance(data, Found):
        shown = to_jsonable(data) | {"units": [_unit_json(u, stale_seconds) for u in data.units]}
    else:
        shown = to_jsonable(data)
    document = {"ok": True, "message": outcome.message, outcome.kind: shown}
    if isinstance(outcome.data, CallRecord):
        # `call show`: the call under "call", as it always was, and its record beside it.
        record = to_jsonable(outcome.data)
        document = {"ok": True, "message": outcome.message, **record}
    if outcome.total is not None:  # a list that may be cut on purpose says whether it was
        document |= {"truncated": outcome.truncated, "total": outcome.total}
    if outcome.request_id is not None:  # a write: its id, and whether a retry found it done
        document |= {"request_id": outcome.request_id, "done_before": outcome.done_before}
    return json.dumps(document)


def print_outcome(
    console: Console, outcome: Outcome, stale_seconds: int = norms.STALE_POSITION_SECONDS
) -> None:
    """`outcome` for people: its table, and its line where the table does not say it all. A
    unit's position older than `stale_seconds` is marked STALE."""
    data = outcome.data
    if outcome.kind == "call":
        _call(console, data)
    elif outcome.kind == "record":
        _record(console, data)
    elif outcome.kind == "found":
        assert isinstance(data, Found)
        if data.calls:
            _calls(console, list(data.calls))
        if data.units:
            _units(console, list(data.units), stale_seconds)
        console.print(_t(outcome.message))
    elif outcome.kind == "calls":
        _calls(console, data)
    elif outcome.kind in ("units", "unit"):
        units = data if isinstance(data, list) else [data]
        _units(console, units, stale_seconds)
        stale = any(norms.age_stale(u.position_age, stale_seconds) for u in units)
        if outcome.kind == "unit" or stale:  # the line names the stale ones
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
            guess = "~" if r.stale_position else ""  # from a stale position: a guess
            eta = f"{guess}{round(r.eta_seconds / 60)} min" if r.eta_seconds is not None else "?"
            table.add_row(_t(r.rank), _t(r.unit.code), _t(r.unit.capability), _t(eta), _t(r.reason))
        if data:
            console.print(table)
        console.print(_t(outcome.message))
    elif outcome.kind == "clearing":
        table = _table("Unit", "Cap", "Now", "Free in", "At the call in")
        for clearing in data:
            table.add_row(
                _t(clearing.unit.code),
                _t(clearing.unit.capability),
                _t(f"{clearing.unit.status} on {clearing.unit.call_number}"),
                _t(f"~{round(clearing.free_in / 60)} min"),
                _t(f"~{round(clearing.eta / 60)} min" if clearing.eta is not None else "?"),
            )
        console.print(table)
        console.print(_t(outcome.message))
    elif outcome.kind in ("premises", "premise") and data is not None:
        table = _table("#", "Address", "Hazard", "Until", "Added", "By")
        for p in data if isinstance(data, list) else [data]:
            assert isinstance(p, PremiseView)
            until = "" if p.until is None else f"{p.until.astimezone():%Y-%m-%d}"
            table.add_row(
                _t(p.id),
                _t(p.address),
                _t(p.note),
                _t(until),
                _time(p.added_at),
                _t(p.added_by or ""),
            )
        console.print(table)
        console.print(_t(outcome.message))
    elif outcome.kind == "matches":
        table = _table("#", "Address", "Position", "Score", "Found")
        for rank, m in enumerate(data, start=1):
            assert isinstance(m, AddressMatch)
            found = f"{m.quality}: {m.note}" if m.note else m.quality
            table.add_row(
                _t(rank),
                _t(m.label),
                _t(f"{m.lat:.5f}, {m.lon:.5f}"),
                _t(f"{m.score:.2f}"),
                _t(found),
            )
        console.print(table)
    elif outcome.kind == "audit":
        table = _table("When", "Operator", "Desk", "Action", "Call", "Unit", "Details")
        for a in data:
            assert isinstance(a, AuditView)
            details = _details(a.details)
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


def _details(details: dict[str, Any]) -> str:
    """An audit row's details as `key=value`; a unit's status change as its words alone
    (`dispatched → en route`: the stored statuses of the crew's report are both EN_ROUTE)."""
    shown = {k: v for k, v in details.items() if v not in (None, "")}
    words = shown.pop("change", None)
    if words is not None:
        shown.pop("old", None)
        shown.pop("new", None)
    pairs = [f"{k}={v}" for k, v in shown.items()]
    return ", ".join([str(words), *pairs] if words is not None else pairs)


def _call(console: Console, call: CallView) -> None:
    head = Text()
    head.append(f"{call.number}  P{call.priority}", style="bold")
    if call.determinant:
        head.append(f" {call.determinant}")
    head.append(f"  {call.status}  ")
    head.append(call.nature)
    if call.hazard:  # the record lists which, below
        head.append("  ")
        head.append("HAZARD", style="bold reverse red")
    console.print(head)
    where = call.location_text + ("" if call.location_verified else "  (UNVERIFIED location)")
    lines: list[tuple[str, Any]] = [
        ("Location", where),
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
                _t(unit_state(a.unit_status, a.en_route_at is not None)),
                _time(a.notified_at),
                _time(a.en_route_at),
                _time(a.on_scene_at),
                _time(a.transporting_at),
                _time(a.at_destination_at),
                _time(a.cleared_at or a.cancelled_at),
            )
        console.print(table)


def _record(console: Console, record: CallRecord) -> None:
    """A call's record: its fields and units (as `_call`), then its timeline."""
    _call(console, record.call)
    extra: list[tuple[str, Any]] = [("Taken by", record.created_by or "—")]
    if record.place:
        extra.append(("Place", record.place))
    if record.call.reopened_at:
        extra.append(("Re-opened", _time(record.call.reopened_at)))
    for label, value in extra:
        console.print(Text(f"  {label:<12}") + (value if isinstance(value, Text) else _t(value)))
    for hazard in record.hazards:  # loudly, in words
        console.print(Text("  ") + Text(hazard.line(), style="bold reverse red"))
    prior = record.prior_count
    console.print(
        Text(f"  {'Prior calls':<12}")
        + _t(
            f"{prior} at this address in 12 months"
            if prior
            else "none at this address in 12 months"
        )
    )
    for call in record.prior:
        console.print(Text(" " * 14) + _t(call.line()))
    table = _table("When", "Who", "", "What")
    for entry in record.timeline:
        kind = {"note": "note", "alert": "alert"}.get(entry.source, "")
        ref = f"#{entry.ref}" if entry.source != "audit" else ""
        table.add_row(_time(entry.at), _t(entry.who), _t(f"{kind} {ref}".strip()), _t(entry.text))
    console.print(table)


def _flags(call: CallView) -> list[str]:
    """What a call's line says of its place, in words: HAZARD, UNVERIFIED."""
    said = (("HAZARD", call.hazard), ("UNVERIFIED", not call.location_verified))
    return [words for words, on in said if on]


def _calls(console: Console, calls: list[CallView]) -> None:
    table = _table("Call", "P", "Status", "Received", "Nature", "Location", "", "Units")
    for c in calls:
        table.add_row(
            _t(c.number),
            _t(c.priority),
            _t(c.status),
            _time(c.received_at),
            _t(c.nature),
            _t(c.location_text),
            Text(" ".join(_flags(c)), style="bold"),
            _t(", ".join(c.active_units)),
        )
    console.print(table)


def _reported(unit: UnitView, stale_seconds: int) -> Text:
    """How old a unit's position is (`4 min old`), STALE past `stale_seconds`; `—` for none
    (it is measured from its station)."""
    if unit.position_age is None:
        return Text("—")
    old = norms.position_age_words(unit.position_age).removeprefix("position ")
    if norms.age_stale(unit.position_age, stale_seconds):
        return Text(f"STALE {old}", style="bold yellow")
    return Text(old)


def _units(console: Console, units: list[UnitView], stale_seconds: int) -> None:
    table = _table("Unit", "Cap", "Status", "Since", "Call", "Station", "Position", "Reported")
    for u in units:
        pos = f"{u.lat:.4f}, {u.lon:.4f}" if u.lat is not None and u.lon is not None else "—"
        table.add_row(
            _t(u.code),
            _t(u.capability),
            _t(unit_state(u.status, u.en_route_reported)),
            _time(u.status_since),
            _t(u.call_number or ""),
            _t(u.station_code or ""),
            _t(pos),
            _reported(u, stale_seconds),
        )
    console.print(table)
