"""The crew's side of an assignment: acknowledging the dispatch.

An acknowledgement (NEMSIS eTimes.04, "dispatch acknowledged") is stored by the database's clock
(migration 0008's trigger stamps it, once), by the crew of the unit (its paramedic's login: a
crew terminal, `dispatch-tui unit ack`) or by a dispatcher who heard it on the radio.
"""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm import Session

from dispatch_tui.db import views
from dispatch_tui.db.models import Assignment
from dispatch_tui.rules import lifecycle, validation
from dispatch_tui.rules.commands import Once
from dispatch_tui.rules.errors import Conflict
from dispatch_tui.rules.views import CallView
from dispatch_tui.service import lookups, steps
from dispatch_tui.service.transactions import write
from dispatch_tui.service.writer import Writer


class CrewWrites(Writer):
    """Acknowledge."""

    def acknowledge(self, username: str, unit_code: str, once: Once | None = None) -> CallView:
        """The crew has the unit's current assignment: its acknowledged time is set (once) and
        every desk shows it beside the notified time. The call, as it now is."""
        code = validation.unit_code(unit_code)

        def work(s: Session) -> CallView:
            staff = steps.authorise(s, username, "acknowledge", lookups.unit_id(s, code))
            unit, call, assignment, _ = steps.lock_unit_on_call(s, code)
            if call is None or assignment is None:
                raise Conflict(
                    f"{code} is {lifecycle.label(unit.status)}, on no call: nothing to acknowledge"
                )
            if assignment.acknowledged_at is not None:
                at = assignment.acknowledged_at.astimezone().strftime("%H:%M:%S")
                raise Conflict(f"{code} acknowledged {call.number} already, at {at}")
            s.execute(
                update(Assignment)
                .where(Assignment.id == assignment.id)
                # The trigger puts the database's clock here, whatever this says.
                .values(acknowledged_at=steps.clock(s))
            )
            self._audit(s, staff, "acknowledged", call_id=call.id, unit_id=unit.id)
            return views.call(s, call.id)

        return write(self.sessions, work, once)
