"""Carry out a parsed verb against the service: the one place the CLI and the command bar share.

Each verb returns an `Outcome`: a one-line message (the desk's accepted/rejected feedback, the
CLI's confirmation) and the data behind it (the CLI prints it as a table or as JSON).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dispatch_tui.rules import lifecycle
from dispatch_tui.rules.validation import CallIntake
from dispatch_tui.rules.views import CallView
from dispatch_tui.service.dispatch_service import DispatchService


@dataclass(frozen=True, slots=True)
class Outcome:
    message: str
    data: Any
    kind: str  # what `data` is: call, calls, unit, units, hospital, hospitals, places, ...


def _units_of(call: CallView) -> str:
    return ", ".join(call.active_units) or "no units"


def _call_new(svc: DispatchService, who: str, ns: argparse.Namespace) -> Outcome:
    call = svc.create_call(
        who,
        CallIntake(
            nature=ns.nature,
            location=ns.location,
            place=ns.place,
            priority=ns.priority,
            determinant=ns.determinant,
            caller_name=ns.caller,
            caller_phone=ns.phone,
            notes=ns.notes,
            lat=ns.lat,
            lon=ns.lon,
        ),
    )
    return Outcome(f"{call.number} taken: P{call.priority} {call.nature}", call, "call")


def _call_show(svc: DispatchService, who: str, ns: argparse.Namespace) -> Outcome:
    call = svc.call(ns.call)
    return Outcome(f"{call.number} is {lifecycle.label(call.status)}", call, "call")


def _call_cancel(svc: DispatchService, who: str, ns: argparse.Namespace) -> Outcome:
    call = svc.cancel_call(who, ns.call, ns.reason)
    return Outcome(f"{call.number} cancelled; units released", call, "call")


def _call_close(svc: DispatchService, who: str, ns: argparse.Namespace) -> Outcome:
    call = svc.close_call(who, ns.call, ns.disposition)
    return Outcome(f"{call.number} closed", call, "call")


def _dispatch(svc: DispatchService, who: str, ns: argparse.Namespace) -> Outcome:
    done = svc.dispatch(
        who,
        ns.call,
        ns.units,
        paramedic=ns.paramedic,
        hospital=ns.hospital,
        override_diversion=ns.divert_override,
        add=ns.add,
    )
    sent = ", ".join(done.units)
    call = svc.call(done.call_number)  # read after the commit, to print the call as it is now
    return Outcome(f"{sent} dispatched to {call.number} ({_units_of(call)} on it)", call, "call")


def _unit_status(svc: DispatchService, who: str, ns: argparse.Namespace) -> Outcome:
    unit = svc.unit_status(
        who, ns.unit, ns.status, hospital=ns.hospital, override_diversion=ns.divert_override
    )
    where = f" on {unit.call_number}" if unit.call_number else ""
    return Outcome(f"{unit.code} {lifecycle.label(ns.status)}{where}", unit, "unit")


def _unit_locate(svc: DispatchService, who: str, ns: argparse.Namespace) -> Outcome:
    unit = svc.locate_unit(who, ns.unit, ns.lat, ns.lon)
    return Outcome(f"{unit.code} at {unit.lat:.5f}, {unit.lon:.5f}", unit, "unit")


def _unit_cancel(svc: DispatchService, who: str, ns: argparse.Namespace) -> Outcome:
    call = svc.cancel_unit(who, ns.unit, ns.reason)
    return Outcome(f"{ns.unit.upper()} cancelled from {call.number}; available", call, "call")


def _hospital_status(svc: DispatchService, who: str, ns: argparse.Namespace) -> Outcome:
    h = svc.hospital_status(who, ns.hospital, ns.status, beds=ns.beds)
    beds = f", {h.beds_available} beds" if h.beds_available is not None else ""
    return Outcome(f"{h.code} {h.status.lower()}{beds}", h, "hospital")


def _recommend(svc: DispatchService, who: str, ns: argparse.Namespace) -> Outcome:
    recs = svc.recommend(ns.call, limit=max(1, min(ns.limit, 50)))
    top = f"top: {recs[0].unit.code} ({recs[0].reason})" if recs else "no unit is available"
    return Outcome(top, recs, "recommendations")


def _show(svc: DispatchService, who: str, ns: argparse.Namespace) -> Outcome:
    data: list[Any]
    if ns.what == "calls":
        data = svc.calls(open_only=not ns.all)
    elif ns.what == "units":
        data = svc.units()
    elif ns.what == "hospitals":
        data = svc.hospitals()
    else:
        data = svc.places()
    return Outcome(f"{len(data)} {ns.what}", data, ns.what)


def _audit(svc: DispatchService, who: str, ns: argparse.Namespace) -> Outcome:
    entries = svc.audit(ns.call, limit=max(1, min(ns.limit, 10_000)))
    return Outcome(f"{len(entries)} audit entries", entries, "audit")


VERBS: dict[str, Callable[[DispatchService, str, argparse.Namespace], Outcome]] = {
    "call.new": _call_new,
    "call.show": _call_show,
    "call.cancel": _call_cancel,
    "call.close": _call_close,
    "dispatch": _dispatch,
    "unit.status": _unit_status,
    "unit.locate": _unit_locate,
    "unit.cancel": _unit_cancel,
    "hospital.status": _hospital_status,
    "recommend": _recommend,
    "show": _show,
    "audit": _audit,
}


def execute(service: DispatchService, operator: str, ns: argparse.Namespace) -> Outcome:
    return VERBS[ns.verb](service, operator, ns)
