"""Request ids: a write retried after its answer was lost is carried out once.

Every write a desk or the CLI sends carries a request id (`rules.commands.Once`). The write
inserts the id into `requests`, with what it made, in its own transaction (`remember`, or the
dispatch statement's own CTE), so the row exists exactly when the write committed. A retry that
repeats the id trips the row's primary key, or is refused because the first write already
changed the state; either way `recall` finds the row and the service raises `AlreadyDone` with
what the first write made, and nothing is done twice.

`resolve` is how a desk learns, after reconnecting, whether a write whose answer it lost went
through: it inserts the id itself, marked void. The insert waits for a transaction still holding
the id; if it wins, the write never committed, and now it never can (its own insert would trip
the key); if it loses, the write committed.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Connection, Row, bindparam, insert, select
from sqlalchemy.dialects.postgresql import insert as upsert

from dispatch_tui.db.models import ActionRequest
from dispatch_tui.rules.commands import Once
from dispatch_tui.rules.errors import AlreadyDone, InvalidInput
from dispatch_tui.rules.views import CallView, HospitalView, PremiseView, UnitView

log = logging.getLogger(__name__)

# The primary key a retried write trips (migration 0005).
KEY = "pk_requests"
_KEPT = select(ActionRequest.__table__).where(ActionRequest.id == bindparam("id"))


def made(result: object) -> dict[str, int]:
    """What a write's result names, as the columns of its request row."""
    if isinstance(result, CallView):
        return {"call_id": result.id}
    if isinstance(result, UnitView):
        return {"unit_id": result.id}
    if isinstance(result, HospitalView):
        return {"hospital_id": result.id}
    if isinstance(result, PremiseView):
        return {}  # a hazard note: the request row names nothing (its audit row names the note)
    raise TypeError(f"a write returned {type(result).__name__}, which names nothing to keep")


def remember(conn: Connection, once: Once, result: object) -> None:
    """Keep `once` with what the write made, in the write's transaction."""
    conn.execute(
        insert(ActionRequest).values(id=once.id, fingerprint=once.fingerprint, **made(result))
    )


def recall(conn: Connection, once: Once) -> AlreadyDone | None:
    """The write carried out under `once.id`, or None if there was none.

    An id kept for another action, or given up (void), is refused: a retry must repeat the id
    of the very action it retries."""
    kept = conn.execute(_KEPT, {"id": once.id}).one_or_none()
    if kept is None:
        return None
    if kept.void:
        raise InvalidInput(
            f"request id {once.id} was given up (its write was found not to have gone through); "
            "use a new one"
        )
    if kept.fingerprint != once.fingerprint:
        raise InvalidInput(f"request id {once.id} was used for another action; use a new one")
    return _done(kept)


def resolve(conn: Connection, once: Once) -> AlreadyDone | None:
    """Whether the write sent under `once` went through: what it made, or None when it did not
    (and now never will). Commits on `conn`."""
    claimed = conn.execute(
        upsert(ActionRequest)
        .values(id=once.id, fingerprint=once.fingerprint, void=True)
        .on_conflict_do_nothing(index_elements=[ActionRequest.id])
        .returning(ActionRequest.id)
    ).first()
    conn.commit()
    if claimed is not None:
        log.warning("request %s was in doubt: it did not go through", once.id)
        return None
    kept = conn.execute(_KEPT, {"id": once.id}).one()
    conn.rollback()
    if kept.void:  # given up before, by this desk or another
        return None
    log.warning("request %s was in doubt: it went through", once.id)
    return _done(kept)


def _done(kept: Row[Any]) -> AlreadyDone:
    return AlreadyDone(
        kept.id,
        kept.at,
        call_id=kept.call_id,
        unit_id=kept.unit_id,
        hospital_id=kept.hospital_id,
    )
