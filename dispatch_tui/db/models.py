"""Tables of the dispatch database, as typed SQLAlchemy models.

The database keeps every invariant it can: statuses are CHECKed against the domain enums, a unit
has at most one active assignment and a paramedic at most one active call (partial unique
indexes), assignment times are ordered (NEMSIS eTimes rules), and every timestamp comes from the
database clock. The migrations in `migrations/versions` create exactly this schema; a test
compares the two.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    TIMESTAMP,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Double,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    Sequence,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from dispatch_tui.rules.enums import (
    CallStatus,
    Capability,
    HospitalCapability,
    HospitalStatus,
    Role,
    UnitStatus,
)
from dispatch_tui.rules.validation import (
    CODE_MAX,
    LOCATION_MAX,
    NAME_MAX,
    NARRATIVE_MAX,
    NATURE_MAX,
    NOTES_MAX,
    PHONE_MAX,
)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


TS = TIMESTAMP(timezone=True)


def _in(column: str, values: type[StrEnum]) -> str:
    """A CHECK expression limiting `column` to the values of a domain enum."""
    quoted = ", ".join(f"'{v.value}'" for v in values)
    return f"{column} IN ({quoted})"


def _len(column: str, maximum: int) -> str:
    return f"char_length({column}) <= {maximum}"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Station(Base):
    __tablename__ = "stations"
    __table_args__ = (
        CheckConstraint(_len("code", CODE_MAX), name="code_len"),
        CheckConstraint("lat BETWEEN -90 AND 90 AND lon BETWEEN -180 AND 180", name="position"),
        Index("uq_stations_code_ci", func.upper(text("code")), unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(CODE_MAX))
    name: Mapped[str] = mapped_column(String(NAME_MAX))
    lat: Mapped[float] = mapped_column(Double)
    lon: Mapped[float] = mapped_column(Double)


class Staff(Base):
    __tablename__ = "staff"
    __table_args__ = (
        CheckConstraint(_in("role", Role), name="role"),
        CheckConstraint("username ~ '^[A-Za-z0-9_.-]{1,63}$'", name="username_format"),
        Index("uq_staff_username_ci", func.lower(text("username")), unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(63))
    full_name: Mapped[str] = mapped_column(String(NAME_MAX))
    role: Mapped[str] = mapped_column(String(16))
    # The unit a paramedic is crewing this shift: they may change that unit's status.
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id", use_alter=True))
    active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    created_at: Mapped[datetime] = mapped_column(TS, server_default=func.now())


class Unit(Base):
    __tablename__ = "units"
    __table_args__ = (
        CheckConstraint(_in("capability", Capability), name="capability"),
        CheckConstraint(_in("status", UnitStatus), name="status"),
        CheckConstraint("code ~ '^[A-Z0-9-]{1,16}$'", name="code_format"),
        CheckConstraint(
            "(lat IS NULL) = (lon IS NULL) AND (lat IS NULL) = (position_at IS NULL)",
            name="position_complete",
        ),
        CheckConstraint(
            "lat IS NULL OR (lat BETWEEN -90 AND 90 AND lon BETWEEN -180 AND 180)",
            name="position_range",
        ),
        Index("uq_units_code", "code", unique=True),
        # No index on status: a status change stays in place (migration 0019, which also
        # leaves room on the table's pages for it).
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(CODE_MAX))
    capability: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16), server_default=UnitStatus.AVAILABLE.value)
    status_since: Mapped[datetime] = mapped_column(TS, server_default=func.now())
    station_id: Mapped[int | None] = mapped_column(ForeignKey("stations.id"))
    lat: Mapped[float | None] = mapped_column(Double)
    lon: Mapped[float | None] = mapped_column(Double)
    position_at: Mapped[datetime | None] = mapped_column(TS)


class Hospital(Base):
    __tablename__ = "hospitals"
    __table_args__ = (
        CheckConstraint(_in("status", HospitalStatus), name="status"),
        CheckConstraint("code ~ '^[A-Z0-9-]{1,16}$'", name="code_format"),
        CheckConstraint("beds_available IS NULL OR beds_available >= 0", name="beds"),
        CheckConstraint(
            f"capabilities <@ ARRAY[{', '.join(repr(c.value) for c in HospitalCapability)}]"
            "::varchar[]",
            name="capabilities",
        ),
        CheckConstraint("lat BETWEEN -90 AND 90 AND lon BETWEEN -180 AND 180", name="position"),
        Index("uq_hospitals_code", "code", unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(CODE_MAX))
    name: Mapped[str] = mapped_column(String(NAME_MAX))
    lat: Mapped[float] = mapped_column(Double)
    lon: Mapped[float] = mapped_column(Double)
    status: Mapped[str] = mapped_column(String(16), server_default=HospitalStatus.OPEN.value)
    status_since: Mapped[datetime] = mapped_column(TS, server_default=func.now())
    beds_available: Mapped[int | None] = mapped_column(Integer)
    capabilities: Mapped[list[str]] = mapped_column(
        ARRAY(String(16)), server_default=text("'{}'::varchar[]")
    )


class Place(Base):
    """A named place the intake form can look up: landmarks, schools, malls, junctions."""

    __tablename__ = "places"
    __table_args__ = (
        CheckConstraint("lat BETWEEN -90 AND 90 AND lon BETWEEN -180 AND 180", name="position"),
        Index("uq_places_name_ci", func.lower(text("name")), unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_MAX))
    address: Mapped[str] = mapped_column(String(LOCATION_MAX))
    lat: Mapped[float] = mapped_column(Double)
    lon: Mapped[float] = mapped_column(Double)


call_number_seq = Sequence("call_number_seq", start=1001, metadata=Base.metadata)


class Call(Base):
    __tablename__ = "calls"
    __table_args__ = (
        CheckConstraint(_in("status", CallStatus), name="status"),
        CheckConstraint("priority BETWEEN 1 AND 4", name="priority"),
        CheckConstraint(
            "determinant IS NULL OR determinant ~ '^[0-9]{1,2}-[A-EO]-[0-9]{1,2}[A-Z]?$'",
            name="determinant_format",
        ),
        CheckConstraint(_len("caller_name", NAME_MAX), name="caller_name_len"),
        CheckConstraint(_len("caller_phone", PHONE_MAX), name="caller_phone_len"),
        CheckConstraint(_len("nature", NATURE_MAX) + " AND nature <> ''", name="nature_len"),
        CheckConstraint(
            _len("location_text", LOCATION_MAX) + " AND location_text <> ''", name="location_len"
        ),
        CheckConstraint(_len("notes", NOTES_MAX), name="notes_len"),
        CheckConstraint("(lat IS NULL) = (lon IS NULL)", name="position_complete"),
        CheckConstraint(
            "lat IS NULL OR (lat BETWEEN -90 AND 90 AND lon BETWEEN -180 AND 180)",
            name="position_range",
        ),
        CheckConstraint(
            "(status = 'CLOSED') = (closed_at IS NOT NULL)"
            " AND (status = 'CANCELLED') = (cancelled_at IS NOT NULL)",
            name="end_times",
        ),
        CheckConstraint("NOT location_verified OR lat IS NOT NULL", name="verified_position"),
        CheckConstraint(
            "status = 'RECEIVED' OR first_dispatched_at IS NOT NULL OR status = 'CANCELLED'",
            name="dispatched_time",
        ),
        Index("uq_calls_number", "number", unique=True),
        # The open calls, by columns a status change between open statuses leaves alone, so
        # that change stays in place (migration 0019; `end_times` ties them to the statuses).
        Index(
            "ix_calls_open",
            "id",
            postgresql_where=text("closed_at IS NULL AND cancelled_at IS NULL"),
        ),
        Index("ix_calls_received_at", "received_at"),
        # A premise's history: the calls at an address, by time (migration 0013).
        Index("ix_calls_address_key", "address_key", "received_at"),
        Index("uq_calls_answer_id", "answer_id", unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[str] = mapped_column(
        String(CODE_MAX),
        server_default=text("'C-' || nextval('call_number_seq')::text"),
    )
    received_at: Mapped[datetime] = mapped_column(TS, server_default=func.now())
    caller_name: Mapped[str] = mapped_column(Text, server_default=text("''"))
    caller_phone: Mapped[str] = mapped_column(Text, server_default=text("''"))
    location_text: Mapped[str] = mapped_column(Text)
    lat: Mapped[float | None] = mapped_column(Double)
    lon: Mapped[float | None] = mapped_column(Double)
    place_id: Mapped[int | None] = mapped_column(ForeignKey("places.id"))
    nature: Mapped[str] = mapped_column(Text)
    priority: Mapped[int] = mapped_column(SmallInteger)
    determinant: Mapped[str | None] = mapped_column(String(8))
    notes: Mapped[str] = mapped_column(Text, server_default=text("''"))
    status: Mapped[str] = mapped_column(String(16), server_default=CallStatus.RECEIVED.value)
    destination_hospital_id: Mapped[int | None] = mapped_column(ForeignKey("hospitals.id"))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    dispatched_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    first_dispatched_at: Mapped[datetime | None] = mapped_column(TS)
    closed_at: Mapped[datetime | None] = mapped_column(TS)
    cancelled_at: Mapped[datetime | None] = mapped_column(TS)
    disposition: Mapped[str | None] = mapped_column(Text)
    # The intake form's answer this call was taken from: a trigger sets received_at from it.
    answer_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("call_answers.id"))
    reopened_at: Mapped[datetime | None] = mapped_column(TS)
    # The location as compared (`rules.addresses.normalise_address`), for a premise's history.
    address_key: Mapped[str | None] = mapped_column(Text)
    # Whether its position is one to trust: an address the gazetteer has, a named place, or
    # coordinates given (migration 0014). A location not found is taken, and shown UNVERIFIED.
    location_verified: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))


class Assignment(Base):
    """One unit sent to one call, with its NEMSIS-style times (eTimes.03 onward).

    Times are set when the step happens and never backfilled: a skipped step stays NULL. The
    CHECKs keep the recorded ones in order (NEMSIS rules e046-e055).
    """

    __tablename__ = "assignments"
    __table_args__ = (
        CheckConstraint("en_route_at IS NULL OR en_route_at >= notified_at", name="en_route_order"),
        CheckConstraint(
            "on_scene_at IS NULL OR on_scene_at >= coalesce(en_route_at, notified_at)",
            name="on_scene_order",
        ),
        CheckConstraint(
            "transporting_at IS NULL OR (on_scene_at IS NOT NULL AND transporting_at >= on_scene_at)",
            name="transporting_order",
        ),
        CheckConstraint(
            "at_destination_at IS NULL"
            " OR (transporting_at IS NOT NULL AND at_destination_at >= transporting_at)",
            name="at_destination_order",
        ),
        CheckConstraint(
            "cleared_at IS NULL OR cleared_at >= greatest(notified_at, en_route_at, on_scene_at,"
            " transporting_at, at_destination_at)",
            name="cleared_order",
        ),
        CheckConstraint(
            "cancelled_at IS NULL OR (cleared_at IS NULL AND cancelled_at >= notified_at)",
            name="cancelled_order",
        ),
        CheckConstraint(
            "acknowledged_at IS NULL OR acknowledged_at >= notified_at", name="acknowledged_order"
        ),
        CheckConstraint(
            "transporting_at IS NULL OR hospital_id IS NOT NULL", name="transport_destination"
        ),
        # The heart of "two desks can never book the same unit": at most one open assignment
        # per unit, and a paramedic on at most one open call.
        Index(
            "uq_assignments_active_unit",
            "unit_id",
            unique=True,
            postgresql_where=text("cleared_at IS NULL AND cancelled_at IS NULL"),
        ),
        Index(
            "uq_assignments_active_paramedic",
            "paramedic_id",
            unique=True,
            postgresql_where=text(
                "paramedic_id IS NOT NULL AND cleared_at IS NULL AND cancelled_at IS NULL"
            ),
        ),
        Index("ix_assignments_call_id", "call_id"),
        Index("ix_assignments_notified_at", "notified_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id"))
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"))
    paramedic_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    dispatcher_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    hospital_id: Mapped[int | None] = mapped_column(ForeignKey("hospitals.id"))
    notified_at: Mapped[datetime] = mapped_column(TS, server_default=func.now())
    en_route_at: Mapped[datetime | None] = mapped_column(TS)
    on_scene_at: Mapped[datetime | None] = mapped_column(TS)
    transporting_at: Mapped[datetime | None] = mapped_column(TS)
    at_destination_at: Mapped[datetime | None] = mapped_column(TS)
    cleared_at: Mapped[datetime | None] = mapped_column(TS)
    cancelled_at: Mapped[datetime | None] = mapped_column(TS)
    # The crew's acknowledgement of the dispatch (NEMSIS eTimes.04), by the database's clock
    # (migration 0008's trigger stamps it, once).
    acknowledged_at: Mapped[datetime | None] = mapped_column(TS)


class AuditEntry(Base):
    """Append-only log of every change: a trigger refuses UPDATE, DELETE and TRUNCATE, and
    another stamps `at` and, for a personal login, the operator (migrations 0001, 0004)."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_call_id", "call_id"),
        Index("ix_audit_log_at", "at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    at: Mapped[datetime] = mapped_column(TS, server_default=func.now())
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    operator: Mapped[str] = mapped_column(Text)
    desk: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(String(40))
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id"))
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))
    hospital_id: Mapped[int | None] = mapped_column(ForeignKey("hospitals.id"))
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))


class ActionRequest(Base):
    """The request id of every write carried out, with what it made (migration 0005).

    A write inserts its row in its own transaction, so the row exists exactly when the write
    committed; a retry that repeats the id finds it and gets the first outcome back instead of
    acting twice. `void`: the id was given up when a desk, after reconnecting, found its write
    had not been carried out (the row then keeps that write from ever committing).
    """

    __tablename__ = "requests"
    __table_args__ = (
        CheckConstraint("id ~ '^[A-Za-z0-9._:-]{1,64}$'", name="id_format"),
        CheckConstraint("fingerprint ~ '^[0-9a-f]{64}$'", name="fingerprint_format"),
    )

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    fingerprint: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(TS, server_default=func.clock_timestamp())
    void: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    call_id: Mapped[int | None] = mapped_column(Integer)
    unit_id: Mapped[int | None] = mapped_column(Integer)
    hospital_id: Mapped[int | None] = mapped_column(Integer)


class CallAnswer(Base):
    """When a dispatcher opened the intake form, by the database's clock (migration 0006): the
    call taken from it is received at this time (NEMSIS eTimes.01)."""

    __tablename__ = "call_answers"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    at: Mapped[datetime] = mapped_column(TS, server_default=func.clock_timestamp())
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    desk: Mapped[str] = mapped_column(Text)


class NarrativeEntry(Base):
    """A call's narrative: append-only, stamped and attributed by the database (migration 0006).
    `kind`: a person's `note`, or an `event` the service writes of a change."""

    __tablename__ = "narrative"
    __table_args__ = (
        CheckConstraint("kind IN ('note', 'event')", name="kind"),
        CheckConstraint(f"char_length(text) BETWEEN 1 AND {NARRATIVE_MAX}", name="text_len"),
        Index("ix_narrative_call_id", "call_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id"))
    at: Mapped[datetime] = mapped_column(TS, server_default=func.now())
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    operator: Mapped[str] = mapped_column(Text)
    desk: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(8), server_default=text("'note'"))
    body: Mapped[str] = mapped_column("text", Text)
    corrects_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("narrative.id"))


class Queued(Base):
    """A busy unit's next call, lined up (migration 0007). Open until `ended_at`: dispatched
    when the unit cleared (`assignment_id`), or ended with the reason why not."""

    __tablename__ = "queued"
    __table_args__ = (
        CheckConstraint("(ended_at IS NULL) = (end_reason IS NULL)", name="ended"),
        CheckConstraint("ended_at IS NULL OR ended_at >= queued_at", name="end_order"),
        Index(
            "uq_queued_open_unit", "unit_id", unique=True, postgresql_where=text("ended_at IS NULL")
        ),
        Index("ix_queued_open_call", "call_id", postgresql_where=text("ended_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"))
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id"))
    queued_at: Mapped[datetime] = mapped_column(TS, server_default=func.clock_timestamp())
    queued_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    ended_at: Mapped[datetime | None] = mapped_column(TS)
    end_reason: Mapped[str | None] = mapped_column(Text)
    assignment_id: Mapped[int | None] = mapped_column(ForeignKey("assignments.id"))


class Alert(Base):
    """The crew alert a dispatch or a stand-down owes (migration 0008): a transactional outbox.

    Triggers on assignments write the row in the transaction that dispatched or cancelled the
    unit, so it exists exactly when that change committed; `dispatch-tui alerter` delivers it
    (at least once: a delivery killed midway leaves it pending) and records the outcome.
    `uid` is the alert's stable id, for a gateway to drop duplicates."""

    __tablename__ = "alerts"
    __table_args__ = (
        CheckConstraint("kind IN ('dispatch', 'stand_down', 'reminder')", name="kind"),
        CheckConstraint("state IN ('pending', 'sent', 'failed', 'superseded')", name="state"),
        CheckConstraint("(state = 'sent') = (sent_at IS NOT NULL)", name="sent"),
        CheckConstraint("attempts >= 0", name="attempts"),
        UniqueConstraint("assignment_id", "kind", name="uq_alerts_assignment_kind"),
        Index("ix_alerts_due", "next_attempt_at", "id", postgresql_where=text("state = 'pending'")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    uid: Mapped[uuid.UUID] = mapped_column(Uuid, server_default=func.gen_random_uuid())
    assignment_id: Mapped[int] = mapped_column(ForeignKey("assignments.id"))
    # Its assignment's, copied by the trigger (no foreign keys: the row is written on every
    # dispatch, and kept lean).
    call_id: Mapped[int] = mapped_column(Integer)
    unit_id: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(TS, server_default=func.clock_timestamp())
    state: Mapped[str] = mapped_column(String(16), server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(TS, server_default=func.clock_timestamp())
    last_attempt_at: Mapped[datetime | None] = mapped_column(TS)
    sent_at: Mapped[datetime | None] = mapped_column(TS)
    last_error: Mapped[str | None] = mapped_column(Text)


class PremiseNote(Base):
    """A supervisor's hazard note on an address (migration 0012), kept by the address as
    compared; in force until retired or past `until`."""

    __tablename__ = "premise_notes"
    __table_args__ = (
        CheckConstraint("address_key <> ''", name="key"),
        CheckConstraint("char_length(note) BETWEEN 1 AND 500", name="note_len"),
        Index(
            "ix_premise_notes_in_force",
            "address_key",
            postgresql_where=text("retired_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    address_key: Mapped[str] = mapped_column(Text)
    address: Mapped[str] = mapped_column(Text)
    note: Mapped[str] = mapped_column(Text)
    until: Mapped[datetime | None] = mapped_column(TS)
    added_at: Mapped[datetime] = mapped_column(TS, server_default=func.clock_timestamp())
    added_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    retired_at: Mapped[datetime | None] = mapped_column(TS)
    retired_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))


class AddressPoint(Base):
    """One addressable point of the gazetteer (migration 0014): the agency's GIS data or the
    demo seed. `street_key` is the street as compared."""

    __tablename__ = "address_points"
    __table_args__ = (
        CheckConstraint("lat BETWEEN -90 AND 90 AND lon BETWEEN -180 AND 180", name="position"),
        CheckConstraint("street_key <> ''", name="key"),
        # Completion and exact matches (a number, then its streets); a number placed between
        # its neighbours (a street's numbers in order). Fuzzy street matching is done on the
        # streets (`gazetteer_streets`), not here.
        Index("ix_address_points_number", "number", "street_key"),
        Index("ix_address_points_house", "street_key", "house"),
        Index(
            "uq_address_points_source_key",
            "source",
            "source_key",
            unique=True,
            postgresql_where=text("source_key IS NOT NULL"),
        ),
        Index("ix_address_points_lat_lon", "lat", "lon"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    number: Mapped[str] = mapped_column(Text)
    street: Mapped[str] = mapped_column(Text)
    street_key: Mapped[str] = mapped_column(Text)
    # The number's leading whole number (`rules.addresses.house_number`): 123 for `123A`.
    house: Mapped[int | None] = mapped_column(Integer)
    unit: Mapped[str | None] = mapped_column(Text)
    city: Mapped[str | None] = mapped_column(Text)
    postcode: Mapped[str | None] = mapped_column(Text)
    lat: Mapped[float] = mapped_column(Double)
    lon: Mapped[float] = mapped_column(Double)
    source: Mapped[str | None] = mapped_column(Text)
    source_key: Mapped[str | None] = mapped_column(Text)


class StreetSegment(Base):
    """A street's line (migration 0014): `coords` in GeoJSON order, `[[lon, lat], ...]`, with its
    bounding box so the map reads only what is in view."""

    __tablename__ = "street_segments"
    __table_args__ = (
        CheckConstraint(
            "jsonb_typeof(coords) = 'array' AND jsonb_array_length(coords) >= 2", name="line"
        ),
        Index("ix_street_segments_box", "min_lat", "max_lat", "min_lon", "max_lon"),
        Index("ix_street_segments_street_key", "street_key"),
        Index(
            "uq_street_segments_source_key",
            "source",
            "source_key",
            unique=True,
            postgresql_where=text("source_key IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    street_key: Mapped[str] = mapped_column(Text)
    city: Mapped[str | None] = mapped_column(Text)
    coords: Mapped[Any] = mapped_column(JSONB)
    min_lat: Mapped[float] = mapped_column(Double)
    max_lat: Mapped[float] = mapped_column(Double)
    min_lon: Mapped[float] = mapped_column(Double)
    max_lon: Mapped[float] = mapped_column(Double)
    source: Mapped[str | None] = mapped_column(Text)
    source_key: Mapped[str | None] = mapped_column(Text)


# The gazetteer's streets (migration 0014): a materialized view over the address points and the
# street lines, one row per street and city, refreshed by the importer. On a MetaData of its
# own: the schema test compares tables, and this is no table.
gazetteer_streets = Table(
    "gazetteer_streets",
    MetaData(),
    Column("street_key", Text),
    Column("city", Text),  # '' when the data has none
    Column("name", Text),
    Column("points", Integer),
    Column("lat", Double),
    Column("lon", Double),
)


class RelayChannel(Base):
    """The name of the channel the relay sends changed rows on (migration 0015): a secret only
    dispatchers, supervisors and admins may read, so no other login can hear or forge them."""

    __tablename__ = "relay_channel"
    __table_args__ = (
        CheckConstraint("one", name="one_row"),
        CheckConstraint("name ~ '^dispatch_rows_[0-9a-f]{32}$'", name="name"),
    )

    one: Mapped[bool] = mapped_column(Boolean, primary_key=True, server_default=text("true"))
    name: Mapped[str] = mapped_column(Text)
