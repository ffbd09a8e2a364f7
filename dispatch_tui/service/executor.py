"""Run a typed command against the service, and say what happened in one line.

The one place the CLI, the command bar and the desk's keys share: each builds a command
(`rules/commands.py`), this runs it, and every one-line answer a dispatcher or a script sees is
written here — `✓ M1 dispatched to C-1001` when it was accepted, `✗` and the reason when it was
refused. An `Outcome` also carries the data behind the line (the CLI prints it as a table or as
JSON; the desk selects a call it just took).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, assert_never

from dispatch_tui.rules import commands as c
from dispatch_tui.rules.errors import DispatchError, OutcomeUnknown
from dispatch_tui.rules.lifecycle import label
from dispatch_tui.rules.recommend import NO_UNIT_AVAILABLE
from dispatch_tui.rules.views import Listing
from dispatch_tui.service.dispatch_service import DispatchService

ACCEPTED = "✓"
REFUSED = "✗"


# `show calls --all` without --limit: the newest this many (the open calls alone are never cut).
SHOW_ALL_LIMIT = 500
AUDIT_LIMIT_MAX = 10_000


@dataclass(frozen=True, slots=True)
class Outcome:
    message: str
    data: Any
    kind: str  # what `data` is: call, calls, unit, units, hospital, hospitals, places, ...
    # For a list that may be cut on purpose (calls, audit): how many rows there were in all.
    total: int | None = None

    @property
    def truncated(self) -> bool:
        return self.total is not None and len(self.data) < self.total


@dataclass(frozen=True, slots=True)
class Answer:
    """What a desk shows after an action: accepted (ACCEPTED) or refused (REFUSED), one line,
    and the outcome."""

    ok: bool
    message: str
    outcome: Outcome | None = None


def execute(
    service: DispatchService, operator: str, command: c.Command, *, read_back: bool = True
) -> Outcome:
    """Run one command; a refusal is raised as the DispatchError the service gave.

    `read_back`: read a dispatched call again after the commit, to print it as it is now (the
    CLI does; a desk's panes show it already, and its answer need not wait for a second read).
    """
    match command:
        case c.NewCall(intake):
            call = service.create_call(operator, intake)
            return Outcome(f"{call.number} taken: P{call.priority} {call.nature}", call, "call")
        case c.ShowCall(number):
            call = service.call(number)
            return Outcome(f"{call.number} is {label(call.status)}", call, "call")
        case c.CancelCall(number, reason):
            call = service.cancel_call(operator, number, reason)
            return Outcome(f"{call.number} cancelled; units released", call, "call")
        case c.CloseCall(number, disposition):
            call = service.close_call(operator, number, disposition)
            return Outcome(f"{call.number} closed", call, "call")
        case c.Dispatch(number, units, paramedic, hospital, override, add):
            done = service.dispatch(
                operator,
                number,
                units,
                paramedic=paramedic,
                hospital=hospital,
                override_diversion=override,
                add=add,
            )
            sent = f"{', '.join(done.units)} dispatched to {done.call_number}"
            if not read_back:
                return Outcome(sent, None, "call")
            try:
                # The dispatch is done whatever this read does: a failure here must not turn it
                # into a refusal.
                now = service.call(done.call_number)
            except DispatchError:
                return Outcome(sent, None, "call")
            on_it = ", ".join(now.active_units) or "no units"
            return Outcome(f"{sent} ({on_it} on it)", now, "call")
        case c.SetUnitStatus(code, status, hospital, override):
            unit = service.unit_status(
                operator, code, status, hospital=hospital, override_diversion=override
            )
            to = f" to {hospital.upper()}" if hospital else ""
            where = f" on {unit.call_number}" if unit.call_number else ""
            return Outcome(f"{unit.code} {label(unit.status)}{to}{where}", unit, "unit")
        case c.LocateUnit(code, lat, lon):
            unit = service.locate_unit(operator, code, lat, lon)
            return Outcome(f"{unit.code} at {unit.lat:.5f}, {unit.lon:.5f}", unit, "unit")
        case c.CancelUnit(code, reason):
            call = service.cancel_unit(operator, code, reason)
            gone = code.strip().upper()
            return Outcome(f"{gone} cancelled from {call.number}; available", call, "call")
        case c.SetHospitalStatus(code, status, beds):
            h = service.hospital_status(operator, code, status, beds=beds)
            with_beds = f", {h.beds_available} beds" if h.beds_available is not None else ""
            return Outcome(f"{h.code} {h.status.lower()}{with_beds}", h, "hospital")
        case c.Recommend(number, limit):
            recs = service.recommend(number, limit=max(1, min(limit, 50)))
            top = f"top: {recs[0].unit.code} ({recs[0].reason})" if recs else NO_UNIT_AVAILABLE
            return Outcome(top, recs, "recommendations")
        case c.Show(what, everything, limit):
            data: list[Any]
            if what == "calls":
                if limit is None and everything:
                    limit = SHOW_ALL_LIMIT
                listed = service.listed_calls(
                    open_only=not everything, limit=None if limit is None else max(1, limit)
                )
                return _listed(listed, "calls", "calls")
            elif what == "units":
                data = service.units()
            elif what == "hospitals":
                data = service.hospitals()
            else:
                data = service.places()
            return Outcome(f"{len(data)} {what}", data, what)
        case c.Audit(number, limit):
            entries = service.listed_audit(number, limit=max(1, min(limit, AUDIT_LIMIT_MAX)))
            return _listed(entries, "audit entries", "audit")
        case _:
            assert_never(command)  # mypy refuses a command without its case here


def _listed(listing: Listing[Any], what: str, kind: str) -> Outcome:
    """A list's outcome; one cut on purpose says so, and how to see more."""
    shown, total = len(listing.rows), listing.total
    message = (
        f"showing the newest {shown:,} of {total:,} {what}; use --limit"
        if listing.truncated
        else f"{shown} {what}"
    )
    return Outcome(message, list(listing.rows), kind, total=total)


def answer(service: DispatchService, operator: str, command: c.Command) -> Answer:
    """Run one command for a desk and say how it went; a refusal is an answer, not an exception."""
    try:
        outcome = execute(service, operator, command, read_back=False)
    except OutcomeUnknown as err:
        # Say which action: the dispatcher must look at that call or unit before repeating it.
        return Answer(False, f"{what(command)}: outcome unknown; {err.message}")
    except DispatchError as err:
        return Answer(False, err.message)
    return Answer(True, outcome.message, outcome)


def what(command: c.Command) -> str:
    """A command in a few words, to name it in an answer (`M1 → C-1001`)."""
    match command:
        case c.Dispatch(number, units):
            return f"{', '.join(units)} → {number}"
        case c.NewCall(intake):
            return f"new call '{intake.nature[:40]}'"
        case c.SetUnitStatus(code, status):
            return f"{code} {label(status)}"
        case c.CancelUnit(code):
            return f"cancel {code}"
        case c.CancelCall(number) | c.CloseCall(number):
            verb = "cancel" if isinstance(command, c.CancelCall) else "close"
            return f"{verb} {number}"
        case c.LocateUnit(code):
            return f"position of {code}"
        case c.SetHospitalStatus(code):
            return f"hospital {code}"
    return type(command).__name__
