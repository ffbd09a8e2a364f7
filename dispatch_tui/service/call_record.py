"""Working a call after intake: the answer time, notes, edits, re-open.

Each is one transaction on the call's lock; an edit and a re-open also tell the narrative, in
words (`priority 3 → 1 by alice`).
"""

from __future__ import annotations

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from dispatch_tui.db import views
from dispatch_tui.db.models import Call, CallAnswer, NarrativeEntry, Staff
from dispatch_tui.rules import duplicates, lifecycle, validation
from dispatch_tui.rules.commands import Once
from dispatch_tui.rules.enums import CallStatus
from dispatch_tui.rules.errors import Conflict, InvalidInput, NotFound
from dispatch_tui.rules.views import AnswerTicket, CallView
from dispatch_tui.service import gazetteer, steps
from dispatch_tui.service.transactions import write
from dispatch_tui.service.writer import Writer


class CallRecordWrites(Writer):
    """Answer, note, update, re-open."""

    def answer(self, username: str) -> AnswerTicket:
        """Record that `username` answered a call (the intake form opened), by the database's
        clock: the call taken from the form is received then (`CallIntake.answered`)."""

        def work(s: Session) -> AnswerTicket:
            staff = steps.authorise(s, username, "create_call")
            row = s.execute(
                insert(CallAnswer)
                .values(operator_id=staff.id, desk=self.desk)
                .returning(CallAnswer.id, CallAnswer.at)
            ).one()
            return AnswerTicket(int(row[0]), row[1])

        return write(self.sessions, work)

    def add_note(
        self,
        username: str,
        call_number: str,
        text: str,
        *,
        corrects: int | str | None = None,
        once: Once | None = None,
    ) -> CallView:
        """Append a note to a call's narrative (open or ended). `corrects`: the id of an entry
        of the same call this one corrects (the narrative is never changed)."""
        number = validation.call_number(call_number)
        body = validation.note(text)
        fixes = _entry_id(corrects) if corrects is not None else None

        def work(s: Session) -> CallView:
            # The floor notes any call; a crew, the call its unit is on.
            staff, call_id = steps.authorise_on_call(s, username, "note", number)
            if fixes is not None:
                of = s.scalar(select(NarrativeEntry.call_id).where(NarrativeEntry.id == fixes))
                if of != call_id:
                    raise NotFound(f"{number} has no narrative entry #{fixes}")
            steps.narrate(s, staff, self.desk, call_id, body, kind="note", corrects=fixes)
            return views.call(s, call_id)

        return write(self.sessions, work, once)

    def attach_caller(
        self,
        username: str,
        call_number: str,
        raw: validation.CallIntake,
        once: Once | None = None,
    ) -> CallView:
        """Another caller for an open call (a duplicate found at intake): no new call; who
        called, their number and what they said go into its narrative as "additional caller",
        audited."""
        number = validation.call_number(call_number)
        report = validation.caller_report(raw)

        def work(s: Session) -> CallView:
            staff = steps.authorise(s, username, "create_call")
            call = steps.lock_call(s, number)
            if not CallStatus(call.status).is_open:
                raise Conflict(
                    f"{number} is {lifecycle.label(call.status)}: take a new call instead"
                )
            who = report.caller_name or "unnamed"
            body = f"additional caller {who}" + (
                f", {report.caller_phone}" if report.caller_phone else ""
            )
            if report.said:
                body += f": {report.said}"
            steps.narrate(s, staff, self.desk, call.id, body[: validation.NARRATIVE_MAX])
            self._audit(
                s,
                staff,
                "caller_attached",
                call_id=call.id,
                caller=report.caller_name,
                phone=report.caller_phone,
            )
            return views.call(s, call.id)

        return write(self.sessions, work, once)

    def update_call(
        self,
        username: str,
        call_number: str,
        raw: validation.CallChanges,
        once: Once | None = None,
    ) -> CallView:
        """Change an open call's priority, determinant, nature, location or caller: one locked
        transaction writing only the columns that change, an audit row (old → new) and a
        narrative line ("priority 3 → 1 by alice")."""
        number = validation.call_number(call_number)
        edit = validation.changes(raw)

        def work(s: Session) -> CallView:
            staff = steps.authorise(s, username, "update_call")
            call = steps.lock_call(s, number)
            if not CallStatus(call.status).is_open:
                raise Conflict(
                    f"{number} is {lifecycle.label(call.status)}; re-open it to change it"
                )
            wanted = dict(edit.values)
            if edit.place:
                place = steps.find_place(s, edit.place)
                wanted["place_id"] = place.id
                wanted["location_text"] = f"{place.name}, {place.address}"[
                    : validation.LOCATION_MAX
                ]
                wanted.setdefault("lat", place.lat)
                wanted.setdefault("lon", place.lon)
            elif "location_text" in wanted:
                # A location typed anew is no longer the named place, nor where it was: without
                # coordinates of its own, the old ones would rank units for the wrong place. It
                # is looked up as at intake, and is as verified as the gazetteer says.
                wanted["place_id"] = None
                if "lat" not in wanted:
                    settled = gazetteer.placed(s, str(wanted["location_text"]))
                    wanted["lat"], wanted["lon"] = settled.position or (None, None)
                    wanted["location_verified"] = settled.verified
            if "lat" in wanted:  # a named place, or coordinates given: trusted
                wanted.setdefault("location_verified", wanted["lat"] is not None)
            changed = {
                column: (getattr(call, column), value)
                for column, value in wanted.items()
                if getattr(call, column) != value
            }
            if "location_text" in changed:  # found by its new address from now on
                key = duplicates.normalise_address(str(changed["location_text"][1])) or None
                changed["address_key"] = (call.address_key, key)
            told = {
                k: v
                for k, v in changed.items()
                if k not in ("place_id", "address_key", "location_verified")
            }
            if not told:
                raise InvalidInput(f"{number} has those values already; nothing to change")
            s.execute(
                update(Call)
                .where(Call.id == call.id)
                .values({column: new for column, (_, new) in changed.items()})
            )
            self._audit(
                s,
                staff,
                "call_updated",
                call_id=call.id,
                changes={column: [old, new] for column, (old, new) in told.items()},
            )
            words = "; ".join(_change(column, old, new) for column, (old, new) in told.items())
            steps.narrate(s, staff, self.desk, call.id, f"{words} by {staff.username}")
            return views.call(s, call.id)

        return write(self.sessions, work, once)

    def reopen_call(
        self, username: str, call_number: str, reason: str, once: Once | None = None
    ) -> CallView:
        """Re-open a closed or cancelled call that ended within the window, with a reason: it
        is pending again, its history intact (audited, and told in its narrative)."""
        number = validation.call_number(call_number)
        why = validation.reason("reason", reason, required=True)

        def work(s: Session) -> CallView:
            staff = steps.authorise(s, username, "reopen_call")
            call = steps.lock_call(s, number)
            if CallStatus(call.status).is_open:
                raise Conflict(f"{number} is {lifecycle.label(call.status)}, not closed")
            at = steps.clock(s)
            ended = call.closed_at or call.cancelled_at
            assert ended is not None, "an ended call has its end time (ck_calls_end_times)"
            if at - ended > self.reopen_window:
                hours = self.reopen_window.total_seconds() / 3600
                raise Conflict(
                    f"{number} ended {steps.ago((at - ended).total_seconds())}; only a call "
                    f"that ended in the last {hours:g} h can be re-opened (take a new call)"
                )
            old, disposition = call.status, call.disposition
            s.execute(
                update(Call)
                .where(Call.id == call.id)
                .values(
                    status=CallStatus.RECEIVED,
                    closed_at=None,
                    cancelled_at=None,
                    disposition=None,
                    reopened_at=at,
                )
            )
            self._audit(
                s, staff, "call_reopened", call_id=call.id, old=old, reason=why, was=disposition
            )
            was = f" ({disposition})" if disposition else ""
            text = f"re-opened, was {lifecycle.label(old)}{was}: {why} by {staff.username}"
            steps.narrate(s, staff, self.desk, call.id, text)
            return views.call(s, call.id)

        return write(self.sessions, work, once)


# How an edited field is named in the narrative.
_FIELD_NAMES = {
    "location_text": "location",
    "caller_name": "caller",
    "caller_phone": "phone",
}


def _change(column: str, old: object, new: object) -> str:
    def shown(value: object) -> str:
        if value is None or value == "":
            return "—"
        return f"'{value}'" if isinstance(value, str) and column != "determinant" else str(value)

    return f"{_FIELD_NAMES.get(column, column)} {shown(old)} → {shown(new)}"


def _entry_id(value: int | str) -> int:
    text = str(value).strip().lstrip("#")
    if not text.isdigit() or len(text) > 18:
        raise InvalidInput(f"'{str(value)[:24]}' is not a narrative entry number")
    return int(text)


def check_answer(s: Session, answer_id: int, staff: Staff) -> None:
    """The intake form's answer: this operator's, and not yet taken as a call."""
    row = s.execute(
        select(CallAnswer.operator_id, Call.number)
        .outerjoin(Call, Call.answer_id == CallAnswer.id)
        .where(CallAnswer.id == answer_id)
    ).one_or_none()
    if row is None or row[0] != staff.id:
        raise InvalidInput(f"no call answer {answer_id} of {staff.username}")
    if row[1] is not None:
        raise Conflict(f"that call was taken already, as {row[1]}")
