"""A dispatch: its rules written once, the one statement that writes it, the read that explains.

`RULES` states every condition a dispatch must meet, each about one kind of row the request names
(the operator, the call, each unit, the paramedic, the destination hospital): its name, the SQL
condition that must hold on that row, and the refusal that says why it does not. `Gate` builds
both users of the rules from that one list:

- **The statement** (`Gate.statement`) is the only writer of a dispatch. It looks up each row
  the request names, keeps it only when every rule about it holds, and locks what it keeps. When
  a row is missing or refused it writes nothing; otherwise, in the same statement, it inserts
  the assignments, moves the units EN_ROUTE and the call DISPATCHED, and writes the audit rows.
  It runs in autocommit, so one round trip is the whole transaction.
- **The explanation** runs only when the statement wrote nothing. One SELECT (`Gate.facts`, a
  read-only transaction of its own, so one snapshot) reads every named row again with, for each
  rule, whether it holds; `Gate.explain` then walks the rules in the order of DOMAIN.md's
  dispatch flow (permission, the call, its units, a call already dispatched without --add, the
  paramedic, the hospital) and raises the first refusal, in its words. It never writes.

So a rule added to `RULES` stops the write and is explained, and there is no other way to
dispatch: the desk, the command bar, the CLI and the simulator all call `DispatchService.dispatch`,
which calls `run` (`tests/test_dispatch_writer.py` holds both to it). Input that is malformed
whatever the database holds is refused before any of this, by `Request.of`.

When the explanation finds nothing wrong, the state changed between the statement and the read
(a unit freed, a paramedic's call closed): `run` runs the statement again, at most `ATTEMPTS`
times in all, then reports a Conflict. A deadlock or serialization failure runs it again too. A
paramedic put on another call by a dispatch that committed while this statement waited trips the
unique index on active assignments: the statement writes nothing, and the explanation names the
call she is on.

Both run at the driver's level (psycopg, prepared) on connections kept for them
(`db.engine.DriverConnections`): SQLAlchemy's execution layer and pool cost a dispatch more CPU
than its round trip.

Why the statement's checks are safe though its snapshot may be older than its locks (READ
COMMITTED): every condition another desk could change is a condition on a locked row, and
PostgreSQL re-checks a locked row's conditions on its newest version after waiting for it.
- The call is locked first, and only when the operator may dispatch. Without `add` it must still
  be RECEIVED, which (by the lifecycle) means it has no active unit.
- Units are locked in id order, and only once the call is locked (the call's CTE gates the units'
  scan), the same order every action uses. A unit another desk is taking is waited for, then
  skipped when its newest row is no longer AVAILABLE, so the count of units comes up short.
- The destination hospital is share-locked after the units (a status change locks only the
  hospital, so the order cannot deadlock): a diversion or closure committed while the statement
  waited for a lock is seen.
- A paramedic put on another call meanwhile is caught by the unique index on active assignments.
- The clock is read once all locks are held, as in `steps.clock`.
- The call row is written only when something on it changes (status, first dispatch,
  destination).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from types import SimpleNamespace
from typing import Any, Literal, NamedTuple

from sqlalchemy import (
    BindParameter,
    Boolean,
    ColumnElement,
    Select,
    String,
    and_,
    any_,
    bindparam,
    case,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, aggregate_order_by
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.orm import InstrumentedAttribute, Session, aliased

from dispatch_tui.db.engine import DriverConnections
from dispatch_tui.db.models import (
    ActionRequest,
    Assignment,
    AuditEntry,
    Call,
    Hospital,
    Staff,
    Unit,
)
from dispatch_tui.rules import lifecycle, permissions, validation
from dispatch_tui.rules.commands import Once
from dispatch_tui.rules.enums import (
    OPEN_CALL_STATUSES,
    CallStatus,
    HospitalStatus,
    Role,
    UnitStatus,
)
from dispatch_tui.rules.errors import (
    NOTHING_CHANGED,
    Conflict,
    DispatchError,
    InvalidInput,
    NotFound,
    Unavailable,
)
from dispatch_tui.rules.views import Dispatched
from dispatch_tui.service import request_ids, steps, transactions
from dispatch_tui.service.lookups import not_an_operator

log = logging.getLogger(__name__)

# The statement, run this many times at most when it wrote nothing and nothing refused it.
ATTEMPTS = 3
MAX_UNITS = 20
# The partial unique indexes that allow one active assignment per unit and per paramedic.
ACTIVE_ASSIGNMENT_INDEXES = ("uq_assignments_active_unit", "uq_assignments_active_paramedic")


# -- the request ----------------------------------------------------------------------------------


class Request(NamedTuple):
    """A dispatch as asked for, validated: names in their canonical form. (A NamedTuple, not a
    frozen dataclass: it is made on the hot path, and costs half as much.)"""

    operator: str
    number: str
    units: tuple[str, ...]
    paramedic: str | None = None
    hospital: str | None = None
    override_diversion: bool = False
    add: bool = False
    once: Once | None = None  # the request id it is kept under

    @classmethod
    def of(
        cls,
        username: str,
        call_number: str,
        unit_codes: Sequence[str],
        *,
        paramedic: str | None = None,
        hospital: str | None = None,
        override_diversion: bool = False,
        add: bool = False,
        once: Once | None = None,
    ) -> Request:
        """Refuse what is malformed whatever the database holds (InvalidInput)."""
        codes = tuple([validation.unit_code(c) for c in unit_codes])
        if not codes:
            raise InvalidInput("name at least one unit to dispatch")
        if len(set(codes)) != len(codes):
            raise InvalidInput("a unit is named twice")
        if len(codes) > MAX_UNITS:
            raise InvalidInput(f"at most {MAX_UNITS} units in one dispatch")
        medic = validation.username(paramedic) if paramedic else None
        if medic and len(codes) > 1:
            raise InvalidInput("name a paramedic with a single unit")
        return cls(
            operator=validation.username(username),
            number=validation.call_number(call_number),
            units=codes,
            paramedic=medic,
            hospital=validation.hospital_code(hospital) if hospital else None,
            override_diversion=override_diversion,
            add=add,
            once=once,
        )

    def params(self, desk: str) -> dict[str, Any]:
        """The statement's parameters (and the explanation's)."""
        return {
            "operator": self.operator.lower(),
            "number": self.number,
            "units": list(self.units),
            "paramedic": self.paramedic.lower() if self.paramedic else None,
            "hospital": self.hospital,
            "override": self.override_diversion,
            "add": self.add,
            "desk": desk,
            "request": self.once.id if self.once else None,
            "fingerprint": self.once.fingerprint if self.once else None,
        }


def _param(name: str, type_: Any = String) -> BindParameter[Any]:
    # Not `required`: the statement is compiled once, before any request, with its constants
    # written in; every run passes all of `Request.params`.
    return bindparam(name, type_=type_, required=False)


# The request's parameters, as the rules and the statement name them.
OPERATOR = _param("operator")
NUMBER = _param("number")
UNITS = _param("units", ARRAY(String))
PARAMEDIC = _param("paramedic")
HOSPITAL = _param("hospital")
OVERRIDE = _param("override", Boolean)
ADD = _param("add", Boolean)
DESK = _param("desk")
REQUEST = _param("request")
FINGERPRINT = _param("fingerprint")


def const(value: str) -> ColumnElement[str]:
    """A constant of the code, written into the SQL itself rather than sent as a parameter."""
    return literal(value, String, literal_execute=True)


AnySelect = Select[*tuple[Any, ...]]

# The paramedic is a staff row too, looked up apart from the operator's.
Medic = aliased(Staff, name="medic")

ACTIVE = steps.ACTIVE  # an assignment not yet cleared or cancelled


# -- the rules ------------------------------------------------------------------------------------


class Kind(Enum):
    """The kinds of row a dispatch names."""

    OPERATOR = "operator"
    CALL = "call"
    UNIT = "unit"
    PARAMEDIC = "paramedic"
    HOSPITAL = "hospital"


# A refusal: from the row the rule does not hold on (as `LOOKUPS` reads it), the error to raise.
Refusal = Callable[[Any], DispatchError]


@dataclass(frozen=True, eq=False)
class Rule:
    """A condition every row of kind `on` must meet, else `refusal` says why not."""

    name: str
    on: Kind
    holds: ColumnElement[bool]
    refusal: Refusal


def _on_a_call(staff_id: InstrumentedAttribute[int]) -> ColumnElement[bool]:
    return select(Assignment.id).where(Assignment.paramedic_id == staff_id, *ACTIVE).exists()


# Every rule of a dispatch, in the order a refusal is looked for (DOMAIN.md's dispatch flow).
RULES: tuple[Rule, ...] = (
    Rule(
        "the operator may dispatch",
        Kind.OPERATOR,
        Staff.role.in_([const(r.value) for r in sorted(permissions.PERMISSIONS["dispatch"])]),
        lambda row: permissions.refusal(row.username, row.role, "dispatch"),
    ),
    Rule(
        "the call is open",
        Kind.CALL,
        Call.status.in_([const(s.value) for s in OPEN_CALL_STATUSES]),
        lambda row: Conflict(f"{row.number} is already {lifecycle.label(row.status)}"),
    ),
    Rule(
        "the unit is available",
        Kind.UNIT,
        # A parameter, not a constant of the SQL: the statement's plan, made once per
        # connection, must take the named units by code. Given the constant, the planner reads
        # how many units were AVAILABLE at the last ANALYZE, and when that was few (a busy hour)
        # it scans every available unit by status instead, for as long as the plan lives.
        Unit.status == literal(UnitStatus.AVAILABLE.value, String),
        lambda row: Conflict(
            steps.busy_text(row.code, row.status, row.call_number, row.dispatcher, row.seconds)
        ),
    ),
    Rule(
        "the call has no unit yet, or more are added (--add)",
        Kind.CALL,
        or_(Call.status == const(CallStatus.RECEIVED), ADD),
        lambda row: Conflict(
            f"{row.number} already has {row.sent} (dispatched by "
            f"{row.first_dispatcher or 'another desk'}); use --add to send more"
        ),
    ),
    Rule(
        "the paramedic is a paramedic",
        Kind.PARAMEDIC,
        Medic.role == const(Role.PARAMEDIC),
        lambda row: InvalidInput(f"{row.username} is a {row.role}, not a paramedic"),
    ),
    Rule(
        "the paramedic is on no other call",
        Kind.PARAMEDIC,
        ~_on_a_call(Medic.id),
        lambda row: Conflict(f"paramedic {row.username} is already on {row.busy_on}"),
    ),
    Rule(
        "the hospital is not closed",
        Kind.HOSPITAL,
        Hospital.status != const(HospitalStatus.CLOSED),
        lambda row: Conflict(f"{row.code} is closed to ambulances"),
    ),
    Rule(
        "a hospital on diversion takes the override",
        Kind.HOSPITAL,
        or_(Hospital.status != const(HospitalStatus.DIVERSION), OVERRIDE),
        lambda row: Conflict(
            f"{row.code} is on diversion; repeat with --divert-override to send anyway"
        ),
    ),
)


# -- what the explanation reads -------------------------------------------------------------------

# The active assignments on the call, by unit id: what "already has" says.
_ON_THE_CALL = (
    select(Assignment.id)
    .join(Unit, Unit.id == Assignment.unit_id)
    .where(Assignment.call_id == Call.id, *ACTIVE)
)

# Each kind of row the request names, as it is, with what its refusals say (and its id, which
# orders the rows). The statement finds the same rows by the same keys.
LOOKUPS: dict[Kind, AnySelect] = {
    Kind.OPERATOR: select(Staff.id, Staff.username, Staff.role).where(
        func.lower(Staff.username) == OPERATOR, Staff.active
    ),
    Kind.CALL: select(
        Call.id,
        Call.number,
        Call.status,
        _ON_THE_CALL.with_only_columns(
            func.string_agg(Unit.code, aggregate_order_by(const(", "), Unit.id))
        )
        .scalar_subquery()
        .label("sent"),
        _ON_THE_CALL.with_only_columns(Staff.username)
        .outerjoin(Staff, Staff.id == Assignment.dispatcher_id)
        .order_by(Unit.id)
        .limit(1)
        .scalar_subquery()
        .label("first_dispatcher"),
    ).where(Call.number == NUMBER),
    # Each named unit, with the call it is on, who sent it there and how long ago.
    Kind.UNIT: select(
        Unit.id,
        Unit.code,
        Unit.status,
        Call.number.label("call_number"),
        Staff.username.label("dispatcher"),
        func.extract("epoch", func.clock_timestamp() - Assignment.notified_at).label("seconds"),
    )
    .outerjoin(Assignment, and_(Assignment.unit_id == Unit.id, *ACTIVE))
    .outerjoin(Call, Call.id == Assignment.call_id)
    .outerjoin(Staff, Staff.id == Assignment.dispatcher_id)
    .where(Unit.code == any_(UNITS)),
    Kind.PARAMEDIC: select(
        Medic.id,
        Medic.username,
        Medic.role,
        select(Call.number)
        .join(Assignment, Assignment.call_id == Call.id)
        .where(Assignment.paramedic_id == Medic.id, *ACTIVE)
        .limit(1)
        .scalar_subquery()
        .label("busy_on"),
    ).where(func.lower(Medic.username) == PARAMEDIC, Medic.active),
    Kind.HOSPITAL: select(Hospital.id, Hospital.code, Hospital.status).where(
        Hospital.code == HOSPITAL
    ),
}


def _named(kind: Kind, request: Request) -> bool:
    if kind is Kind.PARAMEDIC:
        return request.paramedic is not None
    if kind is Kind.HOSPITAL:
        return request.hospital is not None
    return True


def _missing(kind: Kind, request: Request, rows: Sequence[Any]) -> DispatchError | None:
    """What to say when a named row is not there (or not active)."""
    if kind is Kind.UNIT:
        missing = sorted(set(request.units) - {row.code for row in rows})
        return NotFound(f"no unit {', '.join(missing)}") if missing else None
    if rows:
        return None
    if kind is Kind.OPERATOR:
        return not_an_operator(request.operator)
    if kind is Kind.CALL:
        return NotFound(f"no call {request.number}")
    if kind is Kind.PARAMEDIC:
        return NotFound(f"no paramedic '{request.paramedic}'")
    return NotFound(f"no hospital {request.hospital}")


# -- the gate: the rules, and the statement built from them ---------------------------------------

REQUEST_PARAMETERS = frozenset(
    p.key
    for p in (
        OPERATOR,
        NUMBER,
        UNITS,
        PARAMEDIC,
        HOSPITAL,
        OVERRIDE,
        ADD,
        DESK,
        REQUEST,
        FINGERPRINT,
    )
)


class Compiled(NamedTuple):
    sql: bytes
    values: dict[str, Any]  # parameters of the rules' own, with their values


class Gate:
    """The rules, the one statement that enforces them, and the one read that explains a
    refusal: change the rules, and both follow."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        self.rules = tuple(rules)
        self.statement = _statement(self.rules)
        # Every named row, one column per kind (a JSON list of its rows, by id), each row with
        # one field per rule on its kind: whether the rule holds on it. One SELECT, so one
        # snapshot, and one round trip.
        self.facts = select(
            *(
                select(func.json_agg(aggregate_order_by(rows.table_valued(), rows.c.id)))
                .scalar_subquery()
                .label(kind.value)
                for kind, query in LOOKUPS.items()
                for rows in [
                    query.add_columns(
                        *(
                            r.holds.label(f"rule_{i}")
                            for i, r in enumerate(self.rules)
                            if r.on is kind
                        )
                    ).subquery(f"{kind.value}_rows")
                ]
            )
        )
        self._compiled: dict[tuple[str, Dialect], Compiled] = {}

    def compiled(self, what: Literal["statement", "facts"], dialect: Dialect) -> Compiled:
        """The statement ("statement") or the read ("facts") as the driver runs it, compiled
        once, its constants written in."""
        key = (what, dialect)
        if key not in self._compiled:
            compiled = getattr(self, what).compile(
                dialect=dialect, compile_kwargs={"render_postcompile": True}
            )
            # A rule may compare with a plain Python value: a parameter of its own, sent along.
            values = {k: v for k, v in compiled.params.items() if k not in REQUEST_PARAMETERS}
            self._compiled[key] = Compiled(str(compiled).encode(), values)
        return self._compiled[key]

    def explain(
        self, facts: Sequence[Any], request: Request, kinds: Iterable[Kind] = tuple(Kind)
    ) -> dict[Kind, list[Any]]:
        """From the row `facts` read, raise the first refusal, in rule order; a named row that
        is missing is refused at its kind's first rule. Returns the rows of `kinds` when nothing
        is refused."""
        found = {
            kind: [SimpleNamespace(**row) for row in rows or ()]
            for kind, rows in zip(LOOKUPS, facts, strict=True)
        }
        wanted = [k for k in kinds if _named(k, request)]
        checked: set[Kind] = set()

        def rows(kind: Kind) -> list[Any]:
            if kind not in checked:
                checked.add(kind)
                refused = _missing(kind, request, found[kind])
                if refused is not None:
                    raise refused
            return found[kind]

        for i, rule in enumerate(self.rules):
            if rule.on in wanted:
                for row in rows(rule.on):
                    if getattr(row, f"rule_{i}") is not True:
                        raise rule.refusal(row)
        for kind in wanted:
            rows(kind)  # a named row no rule is about must still be there
        return {kind: found[kind] for kind in wanted}

    def destination(self, s: Session, code: str, *, override_diversion: bool) -> int:
        """The hospital a unit may head for, by the same rules as a dispatch's destination (read
        in the caller's transaction)."""
        request = Request("", "", (), hospital=code, override_diversion=override_diversion)
        facts = s.execute(self.facts, request.params("")).one()
        (hospital,) = self.explain(facts, request, [Kind.HOSPITAL])[Kind.HOSPITAL]
        return int(hospital.id)


def _statement(rules: Sequence[Rule]) -> AnySelect:
    def where(kind: Kind) -> list[ColumnElement[bool]]:
        return [r.holds for r in rules if r.on is kind]

    operator = (
        select(Staff.id, Staff.username)
        .where(func.lower(Staff.username) == OPERATOR, Staff.active, *where(Kind.OPERATOR))
        .cte("operator")
    )
    call_row = (
        select(Call.id, Call.status)
        .where(Call.number == NUMBER, *where(Kind.CALL), select(operator.c.id).exists())
        .with_for_update()
        .cte("call_row")
    )
    unit_rows = (
        select(Unit.id)
        .where(
            Unit.code == any_(UNITS),
            # `IS TRUE` (the same test in a WHERE) so that no rule is an index condition: the
            # units are found by code alone. Else the connection's generic plan, made from
            # whatever statistics the table had then, may take every AVAILABLE unit from its
            # status index and AND it with the codes, on every dispatch.
            *[holds.is_(True) for holds in where(Kind.UNIT)],
            select(call_row.c.id).exists(),
        )
        .order_by(Unit.id)
        .with_for_update()
        .cte("unit_rows")
    )
    medic = (
        select(Medic.id, Medic.username)
        .where(func.lower(Medic.username) == PARAMEDIC, Medic.active, *where(Kind.PARAMEDIC))
        .cte("medic")
    )
    destination = (
        select(Hospital.id, Hospital.code)
        .where(Hospital.code == HOSPITAL, *where(Kind.HOSPITAL))
        .with_for_update(read=True)
        .cte("destination")
    )
    # One row when every named row was found and kept (so every rule held), else none.
    go = (
        select(
            call_row.c.id.label("call_id"),
            (call_row.c.status != const(CallStatus.RECEIVED)).label("added"),
            operator.c.id.label("operator_id"),
            operator.c.username.label("operator"),
            medic.c.id.label("medic_id"),
            medic.c.username.label("medic"),
            destination.c.id.label("hospital_id"),
            destination.c.code.label("hospital"),
            func.clock_timestamp().label("at"),
        )
        .select_from(
            call_row.join(operator, true()).outerjoin(medic, true()).outerjoin(destination, true())
        )
        .where(
            select(func.count()).select_from(unit_rows).scalar_subquery()
            == func.cardinality(UNITS),
            or_(PARAMEDIC.is_(None), medic.c.id.is_not(None)),
            or_(HOSPITAL.is_(None), destination.c.id.is_not(None)),
        )
        .cte("go")
    )
    assigned = (
        insert(Assignment)
        .from_select(
            ["call_id", "unit_id", "paramedic_id", "dispatcher_id", "hospital_id", "notified_at"],
            select(
                go.c.call_id,
                unit_rows.c.id,
                go.c.medic_id,
                go.c.operator_id,
                go.c.hospital_id,
                go.c.at,
            ).select_from(go.join(unit_rows, true())),
        )
        .returning(Assignment.unit_id)
        .cte("assigned")
    )
    moved = (
        update(Unit)
        .values(status=const(UnitStatus.EN_ROUTE), status_since=go.c.at)
        .where(Unit.id.in_(select(assigned.c.unit_id)))
        .cte("moved")
    )
    linked = (
        update(Call)
        .values(
            status=case(
                (Call.status == const(CallStatus.RECEIVED), const(CallStatus.DISPATCHED)),
                else_=Call.status,
            ),
            first_dispatched_at=func.coalesce(Call.first_dispatched_at, go.c.at),
            dispatched_by_id=case(
                (Call.first_dispatched_at.is_(None), go.c.operator_id),
                else_=Call.dispatched_by_id,
            ),
            destination_hospital_id=func.coalesce(go.c.hospital_id, Call.destination_hospital_id),
        )
        # Always the call's row, even when nothing on it changes (a unit added to a call on its
        # way): a filter here is judged on the statement's snapshot, so a call set pending by a
        # change that committed meanwhile (its last unit cancelled) would be skipped, and left
        # pending with this unit on it. Targeted by id alone, the row is locked and its CASEs
        # judged on the row as it now is.
        .where(Call.id == go.c.call_id)
        .cte("linked")
    )
    audited = (
        insert(AuditEntry)
        .from_select(
            ["at", "operator_id", "operator", "desk", "action", "call_id", "unit_id", "details"],
            select(
                go.c.at,
                go.c.operator_id,
                go.c.operator,
                DESK,
                const("dispatch"),
                go.c.call_id,
                assigned.c.unit_id,
                func.jsonb_build_object(
                    const("paramedic"),
                    go.c.medic,
                    const("hospital"),
                    go.c.hospital,
                    const("added"),
                    go.c.added,
                ),
            ).select_from(go.join(assigned, true())),
        )
        .cte("audited")
    )
    # The request id, kept with the call it dispatched to: a retry trips its primary key.
    kept = (
        insert(ActionRequest)
        .from_select(
            ["id", "fingerprint", "call_id", "at"],
            select(REQUEST, FINGERPRINT, go.c.call_id, go.c.at).where(REQUEST.is_not(None)),
        )
        .cte("kept")
    )
    return select(go.c.call_id, go.c.at).add_cte(moved, linked, audited, kept)


GATE = Gate(RULES)


# -- running it -----------------------------------------------------------------------------------


def run(connections: DriverConnections, desk: str, request: Request) -> Dispatched:
    """Dispatch as `request` asks, or raise the refusal; see the module's docstring."""
    params = request.params(desk)
    # The driver gets the units as an array literal: a unit code is [A-Z0-9-] (validated), so
    # none needs quoting, and psycopg's adaptation of a list cost more than all the others.
    params["units"] = "{" + ",".join(request.units) + "}"
    dialect = connections.engine.dialect
    for attempt in range(1, ATTEMPTS + 1):
        gate = GATE  # read once: the statement and its explanation come from the same rules
        try:
            try:
                done = _write(connections, gate.compiled("statement", dialect), params)
            except transactions.InDoubt as doubt:
                return _settled(connections.engine, request, doubt)
            if done is not None:
                return Dispatched(done[0], request.number, request.units, done[1])
            if request.once is not None:
                # A retry of a dispatch that went through wrote nothing: say what it did.
                kept = transactions.done_before(connections.engine, request.once)
                if kept is not None:
                    raise kept
            facts = _read(connections, gate.compiled("facts", dialect), params)
        except transactions.Retry:
            transactions.retried(attempt)
            continue
        gate.explain(facts, request)
        log.info(
            "dispatch of %s to %s wrote nothing, yet nothing refuses it now (attempt %d)",
            ", ".join(request.units),
            request.number,
            attempt,
        )
    raise Conflict(f"{request.number} or its units changed at another desk meanwhile; try again")


# Whether the named units are on the call, sent by this operator: what the statement writes.
_DISPATCHED = text(
    """
SELECT c.id, min(a.notified_at), count(*)
FROM assignments a
JOIN calls c ON c.id = a.call_id
JOIN units u ON u.id = a.unit_id
JOIN staff s ON s.id = a.dispatcher_id
WHERE c.number = :number AND u.code = ANY(:units) AND lower(s.username) = :operator
  AND a.cleared_at IS NULL AND a.cancelled_at IS NULL
GROUP BY c.id
"""
).bindparams(bindparam("units", type_=ARRAY(String)))


def _settled(engine: Engine, request: Request, doubt: transactions.InDoubt) -> Dispatched:
    """The statement was in flight when its connection died: find out whether it committed.

    Once the server process that ran it has ended (`transactions.statement_over`), its request
    row is the answer (or, without a request id, what the tables hold: the units on the call,
    or not). When the server cannot be asked, the outcome stays unknown."""
    if not transactions.statement_over(engine, doubt):
        raise doubt
    once = request.once
    if once is not None:  # its request row is the answer
        kept = transactions.settle(engine, lambda conn: request_ids.recall(conn, once) or "none")
        if kept is None:
            raise doubt
        if kept != "none":
            log.warning("dispatch under request %s was in doubt: it committed", once.id)
            return Dispatched(kept.call_id, request.number, request.units, kept.at)
        log.warning("dispatch under request %s was in doubt: it did not commit", once.id)
        raise Unavailable(NOTHING_CHANGED)
    params = {
        "number": request.number,
        "units": list(request.units),
        "operator": request.operator.lower(),
    }
    row = transactions.settle(
        engine, lambda conn: conn.execute(_DISPATCHED, params).one_or_none() or "none"
    )
    if row is None:
        raise doubt
    if row != "none" and row[2] == len(request.units):
        log.warning(
            "dispatch of %s to %s was in doubt: it committed", request.units, request.number
        )
        return Dispatched(int(row[0]), request.number, request.units, row[1])
    log.warning(
        "dispatch of %s to %s was in doubt: it did not commit", request.units, request.number
    )
    raise Unavailable(NOTHING_CHANGED)


def _with(compiled: Compiled, params: dict[str, Any]) -> dict[str, Any]:
    return {**compiled.values, **params} if compiled.values else params


def _write(
    connections: DriverConnections, statement: Compiled, params: dict[str, Any]
) -> tuple[int, datetime] | None:
    """Run the statement: the call's id and the dispatch time, or None when it wrote nothing
    (including when a unit or paramedic was taken by a dispatch that committed meanwhile)."""
    row = transactions.one_statement(
        connections,
        statement.sql,
        _with(statement, params),
        tolerated=(*ACTIVE_ASSIGNMENT_INDEXES, request_ids.KEY),
        writes=True,
    )
    return None if row is None else (int(row[0]), row[1])


def _read(
    connections: DriverConnections, read: Compiled, params: dict[str, Any]
) -> tuple[Any, ...]:
    """Read the facts the explanation needs: one SELECT, a read-only transaction of its own."""
    facts = transactions.one_statement(connections, read.sql, _with(read, params))
    assert facts is not None, "a SELECT of scalar subqueries returns one row"
    return facts
