"""A unit's status change: one call of `dispatch_unit_status` (migration 0010).

The function takes the locks in the shared order, checks the step against the lifecycle's table
(sent as data, `sql_functions.RULES`), stamps the time, lets the call follow its units, and
sends the unit on to its lined-up call as it clears; a refusal comes back as a code, said here in
the words every path uses. The unit it answers with is read straight on the driver.
"""

from __future__ import annotations

import logging
from typing import Any

from dispatch_tui.rules import lifecycle, validation
from dispatch_tui.rules.commands import Once
from dispatch_tui.rules.enums import UnitStatus
from dispatch_tui.rules.errors import (
    Conflict,
    DispatchError,
    InvalidInput,
)
from dispatch_tui.rules.views import UnitView
from dispatch_tui.service import dispatch as dispatching
from dispatch_tui.service import sql_functions
from dispatch_tui.service.transactions import reading
from dispatch_tui.service.writer import Writer

log = logging.getLogger(__name__)

_UNIT_STATUS = (
    b"SELECT * FROM dispatch_unit_status(%(operator)s, %(unit)s, %(status)s, %(hospital)s,"
    b" %(override)s, %(reason)s, %(desk)s, %(request)s, %(fingerprint)s, %(rules)s::jsonb)"
)


class UnitStatusWrites(Writer):
    """A unit's status change, and the words of its refusals."""

    def unit_status(
        self,
        username: str,
        unit_code: str,
        status: str,
        *,
        hospital: str | None = None,
        override_diversion: bool = False,
        reason: str = "",
        once: Once | None = None,
    ) -> UnitView:
        code = validation.unit_code(unit_code)
        why = validation.reason("reason", reason)
        try:
            target = UnitStatus(status.strip().upper())
        except ValueError:
            raise InvalidInput(f"'{status[:24]}' is not a unit status") from None
        hcode = validation.hospital_code(hospital) if hospital else None
        params = {
            "operator": validation.username(username),
            "unit": code,
            "status": target.value,
            "hospital": hcode,
            "override": override_diversion,
            "reason": why,
            "desk": self.desk,
        }

        def refusal(outcome: str, facts: dict[str, Any]) -> DispatchError | None:
            return self._status_refusal(
                username, code, target, outcome, facts, override_diversion=override_diversion
            )

        unit_id, at, said = sql_functions.run(
            self.statements,
            _UNIT_STATUS,
            params,
            once,
            refusal,
            f"{code} changed at another desk a moment ago; look again",
        )
        return self._unit_now(unit_id, at, said)

    def _status_refusal(
        self,
        username: str,
        code: str,
        target: UnitStatus,
        outcome: str,
        facts: dict[str, Any],
        *,
        override_diversion: bool,
    ) -> DispatchError | None:
        """What `dispatch_unit_status` refused, in the words every path uses (None: nothing
        refuses it now)."""
        shared = sql_functions.shared_refusal(username, "unit_status", outcome, facts, unit=code)
        if shared is not None:
            return shared
        status = str(facts.get("status", ""))
        match outcome:
            case "inconsistent":
                try:
                    lifecycle.check_consistent(code, status, facts.get("call"))
                except Conflict as err:
                    return err
                return None
            case "step_refused":
                try:
                    lifecycle.unit_step(code, UnitStatus(status), target, bool(facts["reported"]))
                except Conflict as err:
                    return err
                return None
            case "needs_destination":
                return InvalidInput(f"{code} needs a destination hospital to transport")
            case "destination_refused":
                # The dispatch gate's rules about a hospital say why (a destination chosen at
                # dispatch that has since gone on diversion is refused like a new choice).
                try:
                    with reading(self.sessions) as s:
                        dispatching.GATE.destination(
                            s, str(facts["code"]), override_diversion=override_diversion
                        )
                except DispatchError as err:
                    return err
                return None
        raise AssertionError(f"dispatch_unit_status answered {outcome!r}")
