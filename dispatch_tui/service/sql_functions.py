"""Writes that are one SQL function each (migrations 0010, 0018, 0022): a divert, a unit's
status change, lining up a call and taking it back, a position report.

Each function locks, checks, writes, audits and keeps the write's request id in one call, run as
one statement in autocommit on the driver (`transactions.one_statement`), as a dispatch is: one
round trip is the whole transaction. The rules come in as data (`RULES`, built here from
`rules/`, where they are written once), and a refusal comes back as a code with its facts, for
the service to say in the words every path uses.

`run` is what the writers share: the statement again while the unit moves under it (at most
`ATTEMPTS` times), a retry under a request id that went through answered with what it did, and a
statement whose connection died in flight settled by its request row (without a request id its
outcome stays unknown: the desk and the CLI always send one).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from dispatch_tui.db.engine import DriverConnections
from dispatch_tui.rules import lifecycle, permissions, validation
from dispatch_tui.rules.commands import Once
from dispatch_tui.rules.enums import (
    OPEN_CALL_STATUSES,
    CallStatus,
    HospitalStatus,
    UnitStatus,
)
from dispatch_tui.rules.errors import (
    NOTHING_CHANGED,
    AlreadyDone,
    Conflict,
    DispatchError,
    NotFound,
    Unavailable,
)
from dispatch_tui.service import lookups, request_ids, transactions

log = logging.getLogger(__name__)

# A statement runs this many times at most while what it acts on moves under it.
ATTEMPTS = 3

# The rules the functions of migration 0010 apply, as data: from rules/, written there once.
RULES = json.dumps(
    {
        "may_dispatch": sorted(r.value for r in permissions.PERMISSIONS["dispatch"]),
        # Who may change a unit's status, and who may on the unit they crew.
        "may": sorted(r.value for r in permissions.PERMISSIONS["unit_status"]),
        "own_unit": [r.value for r in permissions.own_unit_roles("unit_status")],
        # Who may report a unit's position, and who may for the unit they crew (migration 0022).
        "may_locate": sorted(r.value for r in permissions.PERMISSIONS["locate_unit"]),
        "own_locate": [r.value for r in permissions.own_unit_roles("locate_unit")],
        "steps": {
            f"{start.value}>{end.value}": {
                "time_column": step.time_column,
                "ends": step.ends_assignment,
                "destination": step.needs_destination,
            }
            for (start, end), step in lifecycle.UNIT_STEPS.items()
        },
        "busy": [s.value for s in lifecycle.BUSY],
        "divert_from": [s.value for s in lifecycle.DIVERTIBLE],
        "open": [s.value for s in OPEN_CALL_STATUSES],
        "call_for_unit": {u.value: c.value for u, c in lifecycle.CALL_FOR_UNIT.items()},
        "call_rank": {c.value: rank for rank, c in enumerate(lifecycle.CALL_ORDER, start=1)},
        # The words of a status, as every screen writes them (a unit dispatched but not yet
        # reported en route included).
        "labels": {
            s: lifecycle.label(s)
            for s in (
                *(u.value for u in UnitStatus),
                *(c.value for c in CallStatus),
                lifecycle.DISPATCHED,
            )
        },
        # A destination a unit may not head for, and one it may only with the override: the
        # dispatch gate's rules about a hospital (`dispatch.RULES`), as statuses.
        "hospital_closed": [HospitalStatus.CLOSED.value],
        "hospital_override": [HospitalStatus.DIVERSION.value],
    },
    sort_keys=True,
)


def shared_refusal(
    username: str,
    action: str,
    outcome: str,
    facts: dict[str, Any],
    *,
    unit: str = "",
    call: str = "",
) -> DispatchError | None:
    """The refusals every function answers alike (an operator not on the staff list, one whose
    role may not do `action`, a unit or a call not known), in the words every path uses; None
    for a refusal of the function's own."""
    match outcome:
        case "no_operator":
            return lookups.not_an_operator(validation.username(username))
        case "forbidden":
            return permissions.refusal(str(facts["operator"]), str(facts["role"]), action)
        case "no_unit":
            return NotFound(f"no unit {unit}")
        case "no_call":
            return NotFound(f"no call {call}")
    return None


def run(
    connections: DriverConnections,
    sql: bytes,
    params: dict[str, Any],
    once: Once | None,
    refusal: Callable[[str, dict[str, Any]], DispatchError | None],
    moved: str,
) -> tuple[int, datetime, dict[str, Any]]:
    """Run a function's statement: the id it names, the time it acted and what it says of the
    result (empty after an in-doubt write settled), or the refusal
    (`refusal` words a code; None: nothing refuses it now, so it runs again), or AlreadyDone
    for a retry of a write that went through. `moved`: what to say when what it acts on keeps
    moving under it."""
    params = {
        **params,
        "request": once.id if once else None,
        "fingerprint": once.fingerprint if once else None,
        "rules": RULES,
    }
    engine = connections.engine
    for attempt in range(1, ATTEMPTS + 1):
        try:
            row = transactions.one_statement(connections, sql, params, writes=True)
        except transactions.InDoubt as doubt:
            return _settled(engine, once, doubt)
        except transactions.Retry:
            transactions.retried(attempt)
            continue
        except transactions.RequestKept:
            row = None  # its id kept by a write that committed first: say what that did
        if row is not None and row[0] == "done":
            return int(row[1]), row[2], row[3] or {}
        if once is not None:
            # A retry of a write that went through finds the state it made (the unit there
            # already): say what the first one did.
            done = transactions.done_before(engine, once)
            if done is not None:
                raise done
        if row is None:
            raise Conflict("that request id was just used by another write")
        if row[0] == "moved":
            continue
        refused = refusal(row[0], row[3] or {})
        if refused is not None:
            raise refused
        log.info("%s: refused as %s, yet nothing refuses it now", sql[:40], row[0])
    raise Conflict(moved)


def _settled(
    engine: Engine, once: Once | None, doubt: transactions.InDoubt
) -> tuple[int, datetime, dict[str, Any]]:
    """The statement was in flight when its connection died: once its server process has
    ended, its request row is the answer. When the server cannot be asked, the outcome stays
    unknown."""
    if once is None or not transactions.statement_over(engine, doubt):
        raise doubt
    kept: AlreadyDone | str | None = transactions.settle(
        engine, lambda conn: request_ids.recall(conn, once) or "none"
    )
    if kept is None:
        raise doubt
    if not isinstance(kept, AlreadyDone):
        log.warning("write under request %s was in doubt: it did not commit", once.id)
        raise Unavailable(NOTHING_CHANGED)
    log.warning("write under request %s was in doubt: it committed", once.id)
    named = kept.call_id if kept.call_id is not None else kept.unit_id
    assert named is not None, "a move's request row names its call or its unit"
    return named, kept.at, {}
