"""Hazard notes on an address: added and retired by supervisors, audited, never deleted.

A note is kept by the address as compared (`rules.duplicates.normalise_address`), so a call
typed `12 N. Main Street` finds the note on `12 north main st`. Every record of a call there,
and its crew terminal, says it loudly (`db.views.premises`); the call's line on every desk says
HAZARD (`CallView.hazard`), and a note added or retired wakes the desks showing those calls
(its trigger, migration 0017, whoever writes it).
"""

from __future__ import annotations

from datetime import UTC, datetime, time

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from dispatch_tui.db import views
from dispatch_tui.db.models import PremiseNote
from dispatch_tui.rules import duplicates, validation
from dispatch_tui.rules.commands import Once
from dispatch_tui.rules.errors import Conflict, InvalidInput, NotFound
from dispatch_tui.rules.views import PremiseView
from dispatch_tui.service import steps
from dispatch_tui.service.transactions import write
from dispatch_tui.service.writer import Writer

NOTE_MAX = 500


def _until(text: str | None) -> datetime | None:
    """An end date as typed (`2026-12-24`): the note holds through that day."""
    if not text or not text.strip():
        return None
    try:
        day = datetime.strptime(text.strip(), "%Y-%m-%d").date()  # noqa: DTZ007 (a date only)
    except ValueError:
        raise InvalidInput(
            f"--until must be a date like 2026-12-24, not '{text.strip()[:24]}'"
        ) from None
    return datetime.combine(day, time.max).replace(tzinfo=UTC)


class PremiseWrites(Writer):
    """Add and retire hazard notes."""

    def add_premise(
        self,
        username: str,
        address: str,
        note: str,
        until: str | None = None,
        once: Once | None = None,
    ) -> PremiseView:
        """A hazard note on `address`, in force until retired (or past `until`)."""
        where = validation.text_field("address", address, validation.LOCATION_MAX, required=True)
        key = duplicates.normalise_address(where)
        if not key:
            raise InvalidInput("the address has no words to find it by")
        said = validation.text_field("note", note, NOTE_MAX, required=True)
        ends = _until(until)

        def work(s: Session) -> PremiseView:
            staff = steps.authorise(s, username, "premise")
            if ends is not None and ends < steps.clock(s):
                raise InvalidInput("--until is in the past")
            note_id: int = s.execute(
                insert(PremiseNote)
                .values(address_key=key, address=where, note=said, until=ends, added_by_id=staff.id)
                .returning(PremiseNote.id)
            ).scalar_one()
            self._audit(s, staff, "premise_added", address=where, note=said, note_id=note_id)
            (view,) = [p for p in views.premises(s, where) if p.id == note_id]
            return view

        return write(self.sessions, work, once)

    def retire_premise(
        self, username: str, note_id: int | str, once: Once | None = None
    ) -> PremiseView:
        """A hazard note no longer in force (kept, with who retired it and when)."""
        try:
            wanted = int(str(note_id).strip().lstrip("#"))
        except ValueError:
            raise InvalidInput(f"'{str(note_id)[:24]}' is not a note number") from None

        def work(s: Session) -> PremiseView:
            staff = steps.authorise(s, username, "premise")
            row = s.scalar(
                select(PremiseNote).where(PremiseNote.id == wanted).with_for_update(),
                execution_options=steps.FRESH,
            )
            if row is None:
                raise NotFound(f"no hazard note #{wanted}")
            if row.retired_at is not None:
                raise Conflict(f"hazard note #{wanted} was retired already")
            s.execute(
                update(PremiseNote)
                .where(PremiseNote.id == wanted)
                .values(retired_at=steps.clock(s), retired_by_id=staff.id)
            )
            self._audit(s, staff, "premise_retired", address=row.address, note_id=wanted)
            return PremiseView(row.id, row.address, row.note, row.until, row.added_at, None)

        return write(self.sessions, work, once)
