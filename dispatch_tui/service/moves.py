"""Moving units between calls: divert, and lining up a busy unit's next call.

Both calls are locked in id order, then the unit, as every action does; a lined-up call is
dispatched as its unit clears (`next_calls.promote`).
"""

from __future__ import annotations

import logging
from typing import Any

from dispatch_tui.rules import lifecycle, validation
from dispatch_tui.rules.commands import Once
from dispatch_tui.rules.enums import UnitStatus
from dispatch_tui.rules.errors import Conflict, DispatchError
from dispatch_tui.rules.views import Dispatched, UnitView
from dispatch_tui.service import sql_functions
from dispatch_tui.service.writer import Writer

log = logging.getLogger(__name__)

_DIVERT = (
    b"SELECT * FROM dispatch_divert(%(operator)s, %(unit)s, %(call)s, %(reason)s, %(desk)s,"
    b" %(request)s, %(fingerprint)s, %(rules)s::jsonb)"
)
_QUEUE = (
    b"SELECT * FROM dispatch_queue(%(operator)s, %(unit)s, %(call)s, %(desk)s,"
    b" %(request)s, %(fingerprint)s, %(rules)s::jsonb)"
)
_UNQUEUE = (
    b"SELECT * FROM dispatch_unqueue(%(operator)s, %(unit)s, %(desk)s,"
    b" %(request)s, %(fingerprint)s, %(rules)s::jsonb)"
)


def _refusal(
    username: str, code: str, number: str, outcome: str, facts: dict[str, Any]
) -> DispatchError:
    """What `dispatch_divert`, `dispatch_queue` or `dispatch_unqueue` refused, in the words
    every path uses."""
    shared = sql_functions.shared_refusal(
        username, "dispatch", outcome, facts, unit=code, call=number
    )
    if shared is not None:
        return shared
    status = str(facts.get("status", ""))
    match outcome:
        case "already_there":
            return Conflict(f"{code} is on {number} already")
        # A divert's
        case "on_no_call":
            return Conflict(
                f"{code} is {lifecycle.label(status)}, on no call: dispatch it instead "
                f"(d {number} {code})"
            )
        case "target_ended":
            return Conflict(f"{number} is {lifecycle.label(status)}")
        case "not_divertible" if status in (UnitStatus.ON_SCENE, UnitStatus.TRANSPORTING):
            return Conflict(
                f"{code} is {lifecycle.label(status)} on {facts['source']}: a unit with its "
                "patient is not diverted (en route or at the hospital only)"
            )
        case "not_divertible":
            try:  # a status changed outside the desk: say so, and how to mend it
                lifecycle.check_consistent(code, status, str(facts["source"]))
            except Conflict as err:
                return err
            return Conflict(f"{code} is {lifecycle.label(status)}: it cannot be diverted")
        # Lining up a call, and taking it back
        case "not_busy" if status == UnitStatus.AVAILABLE:
            return Conflict(f"{code} is available: dispatch it now (d {number} {code})")
        case "not_busy":
            return Conflict(f"{code} is {lifecycle.label(status)}")
        case "not_pending":
            return Conflict(
                f"{number} is {lifecycle.label(status)}: only a pending call is lined up for a "
                "busy unit"
            )
        case "lined_up":
            return Conflict(f"{code} already has {facts['call']} lined up; unqueue {code} first")
        case "nothing_lined":
            return Conflict(f"{code} has no call lined up")
    raise AssertionError(f"a move's function answered {outcome!r}")


class UnitMoves(Writer):
    """Divert, queue and unqueue."""

    def divert(
        self,
        username: str,
        unit_code: str,
        call_number: str,
        reason: str = "",
        once: Once | None = None,
    ) -> Dispatched:
        """Take a unit from its call to another, in one transaction: its assignment there ends
        (cancelled on the way; cleared once at the hospital), its times kept; a new one starts
        with its own notified time; the old call goes back to pending if no unit is left on it.

        From en route (dispatched or reported) or at the hospital only: a unit with a patient is
        not diverted. One statement, `dispatch_divert` (migration 0010), locks both calls in id
        order, then the unit, so two diverts that cross (M1 to the other's call, M2 to the
        first's) queue instead of deadlocking; it answers a refusal as a code, said here.

        What it did comes back as a dispatch of the unit to the call, as its statement knows
        it; like a dispatch, it does not read the call back (the desks see it through their
        notifications, the executor reads it when it prints it)."""
        code = validation.unit_code(unit_code)
        number = validation.call_number(call_number)
        why = validation.reason("reason", reason)
        params = {
            "operator": validation.username(username),
            "unit": code,
            "call": number,
            "reason": why,
            "desk": self.desk,
        }
        call_id, at, _ = sql_functions.run(
            self.statements,
            _DIVERT,
            params,
            once,
            lambda outcome, facts: _refusal(username, code, number, outcome, facts),
            f"{code} changed at another desk a moment ago; look again",
        )
        return Dispatched(call_id, number, (code,), at)

    def queue(
        self, username: str, unit_code: str, call_number: str, once: Once | None = None
    ) -> UnitView:
        """Line up a busy unit's next call: a pending call it goes to when it clears (in the
        clearing transaction, `dispatch_promote`). At most one per unit; the call stays pending,
        its clocks running, until then. One statement, `dispatch_queue` (migration 0018): the
        call and the unit's own call locked in id order, then the unit."""
        code = validation.unit_code(unit_code)
        number = validation.call_number(call_number)
        params = {
            "operator": validation.username(username),
            "unit": code,
            "call": number,
            "desk": self.desk,
        }
        unit_id, at, said = sql_functions.run(
            self.statements,
            _QUEUE,
            params,
            once,
            lambda outcome, facts: _refusal(username, code, number, outcome, facts),
            f"{code} changed at another desk a moment ago; look again",
        )
        return self._unit_now(unit_id, at, said)

    def unqueue(self, username: str, unit_code: str, once: Once | None = None) -> UnitView:
        """Take back a unit's lined-up next call (`dispatch_unqueue`, migration 0018)."""
        code = validation.unit_code(unit_code)
        params = {"operator": validation.username(username), "unit": code, "desk": self.desk}
        unit_id, at, said = sql_functions.run(
            self.statements,
            _UNQUEUE,
            params,
            once,
            lambda outcome, facts: _refusal(username, code, "", outcome, facts),
            f"{code}'s next call changed at another desk a moment ago; look again",
        )
        return self._unit_now(unit_id, at, said)
