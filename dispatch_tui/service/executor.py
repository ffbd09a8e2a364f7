"""Run a typed command against the service, and say what happened in one line.

The one place the CLI, the command bar and the desk's keys share: each builds a command
(`rules/commands.py`), this runs it, and every one-line answer a dispatcher or a script sees is
written here — `✓ M1 dispatched to C-1001` when it was accepted, `✗` and the reason when it was
refused. An `Outcome` also carries the data behind the line (the CLI prints it as a table or as
JSON; the desk selects a call it just took).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, assert_never

from dispatch_tui.rules import commands as c
from dispatch_tui.rules import norms, validation
from dispatch_tui.rules.errors import (
    AlreadyDone,
    DispatchError,
    DuplicateSuspected,
    InvalidInput,
    NotFound,
    OutcomeUnknown,
)
from dispatch_tui.rules.lifecycle import label, unit_label
from dispatch_tui.rules.recommend import NO_UNIT_AVAILABLE
from dispatch_tui.rules.views import (
    CallView,
    Dispatched,
    HospitalView,
    Listing,
    PremiseView,
    UnitView,
)
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
    # A write's request id; `done_before`: a retry under it found the write carried out already.
    request_id: str | None = None
    done_before: bool = False

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
    in_doubt: bool = False  # a write whose outcome is unknown: to be checked by its request id
    settled: bool = False  # the answer of such a check (went through, or did not and never will)
    # A new call refused as a possible duplicate: the open calls it may be, each in one line
    # (`rules.duplicates.Candidate.line`), by call number.
    duplicates: tuple[tuple[str, str], ...] = ()


def execute(
    service: DispatchService,
    operator: str,
    command: c.Command,
    *,
    read_back: bool = True,
    request_id: str | None = None,
) -> Outcome:
    """Run one command; a refusal is raised as the DispatchError the service gave.

    A write runs under `request_id` (a new one if not given): run again with the same id, it
    answers with what the first run did instead of acting twice (`done_before`). An
    OutcomeUnknown names the id, to retry with.

    `read_back`: read a dispatched call again after the commit, to print it as it is now (the
    CLI does; a desk's panes show it already, and its answer need not wait for a second read).
    """
    if not isinstance(command, c.WRITES):
        return _read(service, command)
    once = c.Once.of(operator, command, request_id)
    try:
        result = _write(service, operator, command, once)
    except AlreadyDone as done:
        when = done.at.astimezone().strftime("%H:%M:%S")
        if isinstance(command, c.AddPremise | c.RetirePremise):  # its request names nothing
            return Outcome(
                f"{what(command)}: done at {when} under this request id; not repeated",
                None,
                "premise",
                request_id=once.id,
                done_before=True,
            )
        made: Written = service.made(done)
        if isinstance(command, c.Dispatch) and isinstance(made, CallView):
            units = tuple(_code(u) for u in command.units)
            made = Dispatched(made.id, made.number, units, done.at)
        elif isinstance(command, c.Divert) and isinstance(made, CallView):
            made = Dispatched(made.id, made.number, (_code(command.unit),), done.at)
        outcome = _said(service, command, made, read_back)
        return replace(
            outcome,
            message=f"{outcome.message} (done at {when} under this request id; not repeated)",
            request_id=once.id,
            done_before=True,
        )
    except OutcomeUnknown as err:
        err.request_id = once.id
        raise
    return replace(_said(service, command, result, read_back), request_id=once.id)


Written = CallView | UnitView | HospitalView | Dispatched | PremiseView


def _write(service: DispatchService, operator: str, command: c.Write, once: c.Once) -> Written:
    """Carry out a write: what the service returns."""
    match command:
        case c.NewCall(intake, new_anyway):
            return service.create_call(
                operator, intake, once, check_duplicates=True, new_anyway=new_anyway
            )
        case c.AttachCaller(number, intake):
            return service.attach_caller(operator, number, intake, once)
        case c.AddPremise(address, note, until):
            return service.add_premise(operator, address, note, until, once)
        case c.RetirePremise(note_id):
            return service.retire_premise(operator, note_id, once)
        case c.CancelCall(number, reason):
            return service.cancel_call(operator, number, reason, once)
        case c.CloseCall(number, disposition):
            return service.close_call(operator, number, disposition, once)
        case c.AddNote(number, text, corrects):
            return service.add_note(operator, number, text, corrects=corrects, once=once)
        case c.UpdateCall(number, changes):
            return service.update_call(operator, number, changes, once)
        case c.ReopenCall(number, reason):
            return service.reopen_call(operator, number, reason, once)
        case c.Dispatch(number, units, paramedic, hospital, override, add):
            return service.dispatch(
                operator,
                number,
                units,
                paramedic=paramedic,
                hospital=hospital,
                override_diversion=override,
                add=add,
                once=once,
            )
        case c.SetUnitStatus(code, status, hospital, override, reason):
            return service.unit_status(
                operator,
                code,
                status,
                hospital=hospital,
                override_diversion=override,
                reason=reason,
                once=once,
            )
        case c.Divert(code, number, reason):
            return service.divert(operator, code, number, reason, once)
        case c.Queue(code, number):
            return service.queue(operator, code, number, once)
        case c.Unqueue(code):
            return service.unqueue(operator, code, once)
        case c.Acknowledge(code):
            return service.acknowledge(operator, code, once)
        case c.LocateUnit(code, lat, lon):
            return service.locate_unit(operator, code, lat, lon, once)
        case c.CancelUnit(code, reason):
            return service.cancel_unit(operator, code, reason, once)
        case c.SetHospitalStatus(code, status, beds):
            return service.hospital_status(operator, code, status, beds=beds, once=once)
        case _:
            assert_never(command)  # mypy refuses a write without its case here


def _said(service: DispatchService, command: c.Write, result: Written, read_back: bool) -> Outcome:
    """A write's one-line answer, from what it made."""
    if isinstance(result, PremiseView):
        if isinstance(command, c.RetirePremise):
            return Outcome(f"hazard note #{result.id} retired: {result.note}", result, "premise")
        return Outcome(
            f"hazard note #{result.id} on {result.address}: {result.note}", result, "premise"
        )
    if isinstance(result, Dispatched):
        done = "diverted" if isinstance(command, c.Divert) else "dispatched"
        sent = f"{', '.join(result.units)} {done} to {result.call_number}"
        if not read_back:
            return Outcome(sent, None, "call")
        try:
            # The dispatch is done whatever this read does: a failure here must not turn it
            # into a refusal.
            now = service.call(result.call_number)
        except DispatchError:
            return Outcome(sent, None, "call")
        on_it = ", ".join(now.active_units) or "no units"
        return Outcome(f"{sent} ({on_it} on it)", now, "call")
    if isinstance(result, UnitView) and isinstance(command, c.Queue | c.Unqueue):
        if isinstance(command, c.Unqueue):
            return Outcome(f"{result.code}: its next call was taken back", result, "unit")
        on = f" (on {result.call_number} now)" if result.call_number else ""
        return Outcome(
            f"{result.code} lined up for {_number(command.call)}{on}: it goes there when it clears",
            result,
            "unit",
        )
    if (
        isinstance(result, UnitView)
        and isinstance(command, c.SetUnitStatus)
        and command.status.upper() == "AVAILABLE"
        and result.status != "AVAILABLE"
        and result.call_number
    ):
        return Outcome(
            f"{result.code} cleared, and on to its next call, {result.call_number}",
            result,
            "unit",
        )
    if isinstance(result, UnitView):
        asked = command.hospital if isinstance(command, c.SetUnitStatus) else None
        to = f" to {_code(asked)}" if asked else ""
        if isinstance(command, c.LocateUnit):
            near = _nearest_address(service, result)
            return Outcome(
                f"{result.code} at {result.lat:.5f}, {result.lon:.5f}{near}", result, "unit"
            )
        where = f" on {result.call_number}" if result.call_number else ""
        said = unit_label(result.status, result.en_route_reported)
        return Outcome(f"{result.code} {said}{to}{where}", result, "unit")
    if isinstance(result, HospitalView):
        with_beds = f", {result.beds_available} beds" if result.beds_available is not None else ""
        return Outcome(f"{result.code} {result.status.lower()}{with_beds}", result, "hospital")
    match command:
        case c.NewCall():
            return Outcome(
                f"{result.number} taken: P{result.priority} {result.nature}", result, "call"
            )
        case c.AttachCaller():
            return Outcome(f"caller added to {result.number} (no new call)", result, "call")
        case c.CancelCall():
            return Outcome(f"{result.number} cancelled; units released", result, "call")
        case c.CloseCall():
            return Outcome(f"{result.number} closed: {result.disposition}", result, "call")
        case c.AddNote():
            return Outcome(f"note added to {result.number}", result, "call")
        case c.UpdateCall():
            where = result.location_text
            return Outcome(
                f"{result.number} updated: P{result.priority} {result.nature}, {where}",
                result,
                "call",
            )
        case c.ReopenCall():
            return Outcome(f"{result.number} re-opened: pending again", result, "call")
        case c.Acknowledge(code):
            unit = _code(code)
            acked = next(
                (a.acknowledged_at for a in result.assignments if a.unit_code == unit and a.active),
                None,
            )
            at = f" at {acked.astimezone().strftime('%H:%M:%S')}" if acked else ""
            return Outcome(f"{unit} acknowledged {result.number}{at}", result, "call")
        case c.CancelUnit(code):
            gone = _code(code)
            return Outcome(f"{gone} cancelled from {result.number}", result, "call")
    raise AssertionError(f"{type(command).__name__} made a {type(result).__name__}")


def _nearest_address(service: DispatchService, unit: UnitView) -> str:
    """`, 20 m from 12 W Maple St, Riverton`: where a unit just located is, in words ("" when
    the gazetteer has no address near, or cannot be read: the position is saved either way)."""
    if unit.lat is None or unit.lon is None:
        return ""
    try:
        near = service.nearest_address(unit.lat, unit.lon)
    except DispatchError:
        return ""
    if near is None:
        return ""
    return f", {near.note.removesuffix(' away')} from {near.label}"


def _read(service: DispatchService, command: c.Read) -> Outcome:
    match command:
        case c.ShowCall(number):
            record = service.record(number)
            call = record.call
            return Outcome(f"{call.number} is {label(call.status)}", record, "record")
        case c.Find(text, days, limit):
            found = service.find(text, days=days, limit=max(1, min(limit, 1000)))
            shown, total = len(found.calls), found.total_calls
            calls = (
                f"showing {shown} of {total:,} calls; use --limit"
                if found.truncated
                else f"{total} call{'s' if total != 1 else ''}"
            )
            units = len(found.units)
            message = f"{calls}, {units} unit{'s' if units != 1 else ''}"
            return Outcome(message, found, "found")
        case c.Recommend(number, limit):
            offered = service.choices(number, limit=max(1, min(limit, 50)))
            recs, diverts = offered.recommended, offered.diverts
            also = "".join(
                f"; or {d.unit.code}: {d.reason} (divert {d.unit.code} {number})" for d in diverts
            )
            if recs:
                top = f"top: {recs[0].unit.code} ({recs[0].reason}){also}"
                return Outcome(top, recs, "recommendations")
            if not offered.clearing:
                return Outcome(f"{NO_UNIT_AVAILABLE}{also}", recs, "recommendations")
            first = offered.clearing[0]
            message = (
                f"{NO_UNIT_AVAILABLE}; next to clear: {first.unit.code} ({first.reason}); "
                f"line it up with: queue {first.unit.code} {number}{also}"
            )
            return Outcome(message, offered.clearing, "clearing")
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
                every = service.units()
                return Outcome(_units_said(every, service.stale_position_seconds), every, what)
            elif what == "hospitals":
                data = service.hospitals()
            else:
                data = service.places()
            return Outcome(f"{len(data)} {what}", data, what)
        case c.Audit(number, limit):
            entries = service.listed_audit(number, limit=max(1, min(limit, AUDIT_LIMIT_MAX)))
            return _listed(entries, "audit entries", "audit")
        case c.Premises(address):
            notes = service.premises(address)
            said = f"{len(notes)} hazard note{'s' if len(notes) != 1 else ''} in force"
            return Outcome(said, notes, "premises")
        case c.Geocode(typed, limit):
            matches = service.geocode(typed, limit=limit)
            if not matches:
                raise NotFound(f"no address in the gazetteer matches '{typed.strip()[:60]}'")
            more = f" (of {len(matches)} places)" if len(matches) > 1 else ""
            return Outcome(f"best: {matches[0].line()}{more}", matches, "matches")
        case _:
            assert_never(command)  # mypy refuses a command without its case here


def _units_said(units: list[UnitView], stale_seconds: int) -> str:
    """`12 units`, and which of them have a stale position: `; positions over 10 min old: M3,
    M5` (said, not only shown, so a script's message has it too)."""
    stale = [u.code for u in units if norms.age_stale(u.position_age, stale_seconds)]
    said = f"{len(units)} units"
    if stale:
        said += f"; positions over {stale_seconds // 60} min old: {', '.join(stale)}"
    return said


def _listed(listing: Listing[Any], what: str, kind: str) -> Outcome:
    """A list's outcome; one cut on purpose says so, and how to see more."""
    shown, total = len(listing.rows), listing.total
    message = (
        f"showing the newest {shown:,} of {total:,} {what}; use --limit"
        if listing.truncated
        else f"{shown} {what}"
    )
    return Outcome(message, list(listing.rows), kind, total=total)


def answer(
    service: DispatchService, operator: str, command: c.Command, request_id: str | None = None
) -> Answer:
    """Run one command for a desk and say how it went; a refusal is an answer, not an exception.

    A write whose outcome is unknown says which action it was (`in_doubt`): the desk checks it
    by its `request_id` once it can (`resolved`)."""
    try:
        outcome = execute(service, operator, command, read_back=False, request_id=request_id)
    except OutcomeUnknown:
        return Answer(
            False,
            f"{what(command)}: outcome unknown (the connection was lost while saving it); "
            "checking once the database answers again",
            in_doubt=True,
        )
    except DuplicateSuspected as err:
        said = tuple((str(c["call"]), str(c["line"])) for c in err.candidates)
        return Answer(False, err.message, duplicates=said)
    except DispatchError as err:
        return Answer(False, err.message)
    return Answer(True, outcome.message, outcome)


def resolved(
    service: DispatchService, operator: str, command: c.Command, request_id: str
) -> Answer:
    """Whether a desk's write whose outcome was unknown went through, by its request id.

    Went through: accepted, with its answer. Did not: refused, and it never will be carried out
    now. Raises the DispatchError when the database still cannot say (ask again later)."""
    once = c.Once.of(operator, command, request_id)
    done = service.resolve(once)
    if done is None:
        return Answer(
            False, f"{what(command)}: did not go through; nothing was changed", settled=True
        )
    made = service.made(done)
    return Answer(True, f"{what(command)}: went through ({_made(made)})", settled=True)


def what(command: c.Command) -> str:
    """A command in a few words, to name it in an answer (`M1 → C-1001`), its names written as
    the panes write them."""
    match command:
        case c.Dispatch(number, units):
            return f"{', '.join(_code(u) for u in units)} → {_number(number)}"
        case c.NewCall(intake):
            return f"new call '{intake.nature[:40]}'"
        case c.AttachCaller(number):
            return f"caller added to {_number(number)}"
        case c.AddPremise(address):
            return f"hazard note on {address[:40]}"
        case c.RetirePremise(note_id):
            return f"retire hazard note #{note_id}"
        case c.SetUnitStatus(code, status):
            return f"{_code(code)} {label(status)}"
        case c.CancelUnit(code):
            return f"cancel {_code(code)}"
        case c.CancelCall(number) | c.CloseCall(number):
            verb = "cancel" if isinstance(command, c.CancelCall) else "close"
            return f"{verb} {_number(number)}"
        case c.AddNote(number):
            return f"note on {_number(number)}"
        case c.UpdateCall(number):
            return f"update of {_number(number)}"
        case c.ReopenCall(number):
            return f"re-open {_number(number)}"
        case c.LocateUnit(code):
            return f"position of {_code(code)}"
        case c.Acknowledge(code):
            return f"acknowledge {_code(code)}"
        case c.Divert(code, number):
            return f"divert {_code(code)} → {_number(number)}"
        case c.Queue(code, number):
            return f"line up {_code(code)} for {_number(number)}"
        case c.Unqueue(code):
            return f"take back {_code(code)}'s next call"
        case c.SetHospitalStatus(code):
            return f"hospital {_code(code)}"
    return type(command).__name__


def _made(view: CallView | UnitView | HospitalView) -> str:
    """What a write made, as it is now, in a few words."""
    if isinstance(view, CallView):
        units = ", ".join(view.active_units) or "no units"
        return f"{view.number} is {label(view.status)}, {units} on it"
    if isinstance(view, UnitView):
        where = f" on {view.call_number}" if view.call_number else ""
        return f"{view.code} is {unit_label(view.status, view.en_route_reported)}{where}"
    return f"{view.code} is {view.status.lower()}"


def _code(typed: str) -> str:
    return typed.strip().upper()


def _number(typed: str) -> str:
    try:
        return validation.call_number(typed)
    except InvalidInput:
        return typed.strip()
