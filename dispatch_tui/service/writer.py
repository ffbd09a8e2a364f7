"""The base of the service's writers (`dispatch_service`, `call_record`, `moves`).

A write is one transaction (`transactions.write`) whose rows are locked in the one order every
action keeps: calls by id, then units by id. What they share lives here.
"""

from __future__ import annotations

import functools
import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session, sessionmaker

from dispatch_tui.db import views
from dispatch_tui.db.engine import DriverConnections
from dispatch_tui.db.models import Call, Staff
from dispatch_tui.rules import validation
from dispatch_tui.rules.commands import Once
from dispatch_tui.rules.duplicates import DuplicateRule
from dispatch_tui.rules.errors import IN_DOUBT, AlreadyDone, OutcomeUnknown, Unavailable
from dispatch_tui.rules.norms import STALE_POSITION_SECONDS
from dispatch_tui.rules.views import UnitView
from dispatch_tui.service import request_ids, steps, transactions
from dispatch_tui.service.read_service import ReadService
from dispatch_tui.service.transactions import db_errors

log = logging.getLogger(__name__)

# How near and how recent an open call is to be a new one's possible duplicate (by default).
DUPLICATES = DuplicateRule()
# How long after its end a closed or cancelled call may be re-opened (by default).
REOPEN_HOURS = 24.0


@functools.cache
def _unit_by_id(dialect: Dialect) -> bytes:
    """`views.UNIT_BY_ID` as the driver runs it, compiled once."""
    return str(views.UNIT_BY_ID.compile(dialect=dialect)).encode()


class Writer(ReadService):
    """What every write shares: the database, the desk it is written from, the audit row, a
    call following its units, and the answer to a write whose outcome was unknown."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        desk: str = "cli",
        *,
        dispositions: tuple[str, ...] = validation.DISPOSITIONS,
        reopen_hours: float = REOPEN_HOURS,
        duplicates: DuplicateRule = DUPLICATES,
        stale_position_seconds: int = STALE_POSITION_SECONDS,
    ) -> None:
        super().__init__(sessions, desk, stale_position_seconds=stale_position_seconds)
        # What a close may say happened, and how long after its end a call may be re-opened.
        self.dispositions = dispositions
        self.reopen_window = timedelta(hours=reopen_hours)
        # How near and how recent an open call is to be a new one's possible duplicate.
        self.duplicates = duplicates
        # The connections the one-statement dispatch runs on (see db/engine.py).
        self.statements = DriverConnections.of(sessions.kw["bind"])

    def _follow(self, s: Session, call: Call, staff: Staff, at: datetime) -> None:
        """The call follows its units (`dispatch_follow`, migration 0010, the one writer of
        that rule): its status from its most advanced active unit, closed when the last one
        cleared, pending again when every one was cancelled; audited."""
        steps.follow_units(s, call.id, staff, self.desk, at)

    def _audit(
        self,
        s: Session,
        staff: Staff,
        action: str,
        *,
        call_id: int | None = None,
        unit_id: int | None = None,
        hospital_id: int | None = None,
        **details: Any,
    ) -> None:
        steps.audit(
            s,
            staff,
            self.desk,
            action,
            call_id=call_id,
            unit_id=unit_id,
            hospital_id=hospital_id,
            **details,
        )

    def _unit(self, unit_id: int) -> UnitView:
        """A unit as it is now, read straight on the driver (a write that answers with it)."""
        compiled = _unit_by_id(self.statements.engine.dialect)
        row = transactions.one_statement(self.statements, compiled, {"unit_id": unit_id})
        assert row is not None, "a unit a write just changed is there"
        return views.unit_view(row)

    def _unit_now(self, unit_id: int, at: datetime, said: dict[str, Any]) -> UnitView:
        """The unit a one-statement write (`sql_functions.run`) just changed, as it is now.
        When the server is gone before it can be read again, the answer is what the statement
        said of the unit (`said`), never "nothing was changed"; with nothing said (a write in
        doubt, settled by its request row), the outcome is unknown."""
        try:
            return self._unit(unit_id)
        except Unavailable:
            if not said:
                raise OutcomeUnknown(IN_DOUBT) from None
            log.warning(
                "%s changed, and could not be read again; answering from the write", said["code"]
            )
            # Since when it is in its status: said by the write when it did not change it
            # (a call lined up), else now.
            since = datetime.fromisoformat(said["since"]) if said.get("since") else at
            return UnitView(
                unit_id,
                str(said["code"]),
                str(said["capability"]),
                str(said["status"]),
                since,
                None,
                None,
                None,
                None,
                said.get("call"),
                en_route_reported=bool(said.get("reported")),
                queued_call=said.get("next"),
            )

    def resolve(self, once: Once) -> AlreadyDone | None:
        """Whether the write sent under `once` went through (what it made), or not (None, and
        now it never will): see `request_ids.resolve`."""
        with db_errors(), self.sessions.kw["bind"].connect() as conn:
            return request_ids.resolve(conn, once)
