"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-23

Tables, constraints and indexes of the dispatch core, the call-number sequence and the trigger
that keeps the audit log append-only.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

AUDIT_APPEND_ONLY = """
CREATE FUNCTION audit_log_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$
"""


def upgrade() -> None:
    op.execute(sa.schema.CreateSequence(sa.Sequence("call_number_seq", start=1001)))
    op.create_table(
        "hospitals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("lat", sa.Double(), nullable=False),
        sa.Column("lon", sa.Double(), nullable=False),
        sa.Column("status", sa.String(length=16), server_default=sa.text("'OPEN'"), nullable=False),
        sa.Column(
            "status_since",
            sa.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("beds_available", sa.Integer(), nullable=True),
        sa.Column(
            "capabilities",
            postgresql.ARRAY(sa.String(length=16)),
            server_default=sa.text("'{}'::varchar[]"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "capabilities <@ ARRAY['trauma', 'stroke', 'stemi', 'paediatric', 'burns', 'obstetrics']::varchar[]",
            name=op.f("ck_hospitals_capabilities"),
        ),
        sa.CheckConstraint("code ~ '^[A-Z0-9-]{1,16}$'", name=op.f("ck_hospitals_code_format")),
        sa.CheckConstraint(
            "status IN ('OPEN', 'DIVERSION', 'CLOSED')", name=op.f("ck_hospitals_status")
        ),
        sa.CheckConstraint(
            "beds_available IS NULL OR beds_available >= 0", name=op.f("ck_hospitals_beds")
        ),
        sa.CheckConstraint(
            "lat BETWEEN -90 AND 90 AND lon BETWEEN -180 AND 180",
            name=op.f("ck_hospitals_position"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hospitals")),
    )
    op.create_index("uq_hospitals_code", "hospitals", ["code"], unique=True)
    op.create_table(
        "places",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("address", sa.String(length=300), nullable=False),
        sa.Column("lat", sa.Double(), nullable=False),
        sa.Column("lon", sa.Double(), nullable=False),
        sa.CheckConstraint(
            "lat BETWEEN -90 AND 90 AND lon BETWEEN -180 AND 180", name=op.f("ck_places_position")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_places")),
    )
    op.create_index("uq_places_name_ci", "places", [sa.literal_column("lower(name)")], unique=True)
    op.create_table(
        "staff",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=63), nullable=False),
        sa.Column("full_name", sa.String(length=120), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=True),
        sa.Column("active", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column(
            "created_at",
            sa.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "role IN ('dispatcher', 'paramedic', 'supervisor', 'admin')", name=op.f("ck_staff_role")
        ),
        sa.CheckConstraint(
            "username ~ '^[A-Za-z0-9_.-]{1,63}$'", name=op.f("ck_staff_username_format")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff")),
    )
    op.create_index(
        "uq_staff_username_ci", "staff", [sa.literal_column("lower(username)")], unique=True
    )
    op.create_table(
        "stations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("lat", sa.Double(), nullable=False),
        sa.Column("lon", sa.Double(), nullable=False),
        sa.CheckConstraint("char_length(code) <= 16", name=op.f("ck_stations_code_len")),
        sa.CheckConstraint(
            "lat BETWEEN -90 AND 90 AND lon BETWEEN -180 AND 180", name=op.f("ck_stations_position")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stations")),
    )
    op.create_index(
        "uq_stations_code_ci", "stations", [sa.literal_column("upper(code)")], unique=True
    )
    op.create_table(
        "calls",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "number",
            sa.String(length=16),
            server_default=sa.text("'C-' || nextval('call_number_seq')::text"),
            nullable=False,
        ),
        sa.Column(
            "received_at",
            sa.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("caller_name", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("caller_phone", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("location_text", sa.Text(), nullable=False),
        sa.Column("lat", sa.Double(), nullable=True),
        sa.Column("lon", sa.Double(), nullable=True),
        sa.Column("place_id", sa.Integer(), nullable=True),
        sa.Column("nature", sa.Text(), nullable=False),
        sa.Column("priority", sa.SmallInteger(), nullable=False),
        sa.Column("determinant", sa.String(length=8), nullable=True),
        sa.Column("notes", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column(
            "status", sa.String(length=16), server_default=sa.text("'RECEIVED'"), nullable=False
        ),
        sa.Column("destination_hospital_id", sa.Integer(), nullable=True),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("dispatched_by_id", sa.Integer(), nullable=True),
        sa.Column("first_dispatched_at", sa.TIMESTAMP(timezone=True), nullable=True),
        sa.Column("closed_at", sa.TIMESTAMP(timezone=True), nullable=True),
        sa.Column("cancelled_at", sa.TIMESTAMP(timezone=True), nullable=True),
        sa.Column("disposition", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "(status = 'CLOSED') = (closed_at IS NOT NULL) AND (status = 'CANCELLED') = (cancelled_at IS NOT NULL)",
            name=op.f("ck_calls_end_times"),
        ),
        sa.CheckConstraint(
            "char_length(location_text) <= 300 AND location_text <> ''",
            name=op.f("ck_calls_location_len"),
        ),
        sa.CheckConstraint(
            "char_length(nature) <= 200 AND nature <> ''", name=op.f("ck_calls_nature_len")
        ),
        sa.CheckConstraint(
            "determinant IS NULL OR determinant ~ '^[0-9]{1,2}-[A-EO]-[0-9]{1,2}[A-Z]?$'",
            name=op.f("ck_calls_determinant_format"),
        ),
        sa.CheckConstraint(
            "status = 'RECEIVED' OR first_dispatched_at IS NOT NULL OR status = 'CANCELLED'",
            name=op.f("ck_calls_dispatched_time"),
        ),
        sa.CheckConstraint(
            "status IN ('RECEIVED', 'DISPATCHED', 'ON_SCENE', 'TRANSPORTING', 'AT_HOSPITAL', 'CLOSED', 'CANCELLED')",
            name=op.f("ck_calls_status"),
        ),
        sa.CheckConstraint(
            "(lat IS NULL) = (lon IS NULL)", name=op.f("ck_calls_position_complete")
        ),
        sa.CheckConstraint(
            "char_length(caller_name) <= 120", name=op.f("ck_calls_caller_name_len")
        ),
        sa.CheckConstraint(
            "char_length(caller_phone) <= 32", name=op.f("ck_calls_caller_phone_len")
        ),
        sa.CheckConstraint("char_length(notes) <= 4000", name=op.f("ck_calls_notes_len")),
        sa.CheckConstraint(
            "lat IS NULL OR (lat BETWEEN -90 AND 90 AND lon BETWEEN -180 AND 180)",
            name=op.f("ck_calls_position_range"),
        ),
        sa.CheckConstraint("priority BETWEEN 1 AND 4", name=op.f("ck_calls_priority")),
        sa.ForeignKeyConstraint(
            ["created_by_id"], ["staff.id"], name=op.f("fk_calls_created_by_id_staff")
        ),
        sa.ForeignKeyConstraint(
            ["destination_hospital_id"],
            ["hospitals.id"],
            name=op.f("fk_calls_destination_hospital_id_hospitals"),
        ),
        sa.ForeignKeyConstraint(
            ["dispatched_by_id"], ["staff.id"], name=op.f("fk_calls_dispatched_by_id_staff")
        ),
        sa.ForeignKeyConstraint(["place_id"], ["places.id"], name=op.f("fk_calls_place_id_places")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calls")),
    )
    op.create_index(
        "ix_calls_open",
        "calls",
        ["status"],
        unique=False,
        postgresql_where=sa.text("status NOT IN ('CLOSED','CANCELLED')"),
    )
    op.create_index("ix_calls_received_at", "calls", ["received_at"], unique=False)
    op.create_index("uq_calls_number", "calls", ["number"], unique=True)
    op.create_table(
        "units",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("capability", sa.String(length=3), nullable=False),
        sa.Column(
            "status", sa.String(length=16), server_default=sa.text("'AVAILABLE'"), nullable=False
        ),
        sa.Column(
            "status_since",
            sa.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("station_id", sa.Integer(), nullable=True),
        sa.Column("lat", sa.Double(), nullable=True),
        sa.Column("lon", sa.Double(), nullable=True),
        sa.Column("position_at", sa.TIMESTAMP(timezone=True), nullable=True),
        sa.CheckConstraint("capability IN ('ALS', 'BLS')", name=op.f("ck_units_capability")),
        sa.CheckConstraint("code ~ '^[A-Z0-9-]{1,16}$'", name=op.f("ck_units_code_format")),
        sa.CheckConstraint(
            "status IN ('AVAILABLE', 'EN_ROUTE', 'ON_SCENE', 'TRANSPORTING', 'AT_HOSPITAL', 'OUT_OF_SERVICE')",
            name=op.f("ck_units_status"),
        ),
        sa.CheckConstraint(
            "(lat IS NULL) = (lon IS NULL) AND (lat IS NULL) = (position_at IS NULL)",
            name=op.f("ck_units_position_complete"),
        ),
        sa.CheckConstraint(
            "lat IS NULL OR (lat BETWEEN -90 AND 90 AND lon BETWEEN -180 AND 180)",
            name=op.f("ck_units_position_range"),
        ),
        sa.ForeignKeyConstraint(
            ["station_id"], ["stations.id"], name=op.f("fk_units_station_id_stations")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_units")),
    )
    op.create_index("ix_units_status", "units", ["status"], unique=False)
    op.create_index("uq_units_code", "units", ["code"], unique=True)
    # staff and units refer to each other: the staff -> units key comes once both exist.
    op.create_foreign_key(op.f("fk_staff_unit_id_units"), "staff", "units", ["unit_id"], ["id"])
    op.create_table(
        "assignments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.Integer(), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("paramedic_id", sa.Integer(), nullable=True),
        sa.Column("dispatcher_id", sa.Integer(), nullable=True),
        sa.Column("hospital_id", sa.Integer(), nullable=True),
        sa.Column(
            "notified_at",
            sa.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("en_route_at", sa.TIMESTAMP(timezone=True), nullable=True),
        sa.Column("on_scene_at", sa.TIMESTAMP(timezone=True), nullable=True),
        sa.Column("transporting_at", sa.TIMESTAMP(timezone=True), nullable=True),
        sa.Column("at_destination_at", sa.TIMESTAMP(timezone=True), nullable=True),
        sa.Column("cleared_at", sa.TIMESTAMP(timezone=True), nullable=True),
        sa.Column("cancelled_at", sa.TIMESTAMP(timezone=True), nullable=True),
        sa.CheckConstraint(
            "at_destination_at IS NULL OR (transporting_at IS NOT NULL AND at_destination_at >= transporting_at)",
            name=op.f("ck_assignments_at_destination_order"),
        ),
        sa.CheckConstraint(
            "cancelled_at IS NULL OR (cleared_at IS NULL AND cancelled_at >= notified_at)",
            name=op.f("ck_assignments_cancelled_order"),
        ),
        sa.CheckConstraint(
            "cleared_at IS NULL OR cleared_at >= greatest(notified_at, en_route_at, on_scene_at, transporting_at, at_destination_at)",
            name=op.f("ck_assignments_cleared_order"),
        ),
        sa.CheckConstraint(
            "en_route_at IS NULL OR en_route_at >= notified_at",
            name=op.f("ck_assignments_en_route_order"),
        ),
        sa.CheckConstraint(
            "on_scene_at IS NULL OR on_scene_at >= coalesce(en_route_at, notified_at)",
            name=op.f("ck_assignments_on_scene_order"),
        ),
        sa.CheckConstraint(
            "transporting_at IS NULL OR (on_scene_at IS NOT NULL AND transporting_at >= on_scene_at)",
            name=op.f("ck_assignments_transporting_order"),
        ),
        sa.CheckConstraint(
            "transporting_at IS NULL OR hospital_id IS NOT NULL",
            name=op.f("ck_assignments_transport_destination"),
        ),
        sa.ForeignKeyConstraint(
            ["call_id"], ["calls.id"], name=op.f("fk_assignments_call_id_calls")
        ),
        sa.ForeignKeyConstraint(
            ["dispatcher_id"], ["staff.id"], name=op.f("fk_assignments_dispatcher_id_staff")
        ),
        sa.ForeignKeyConstraint(
            ["hospital_id"], ["hospitals.id"], name=op.f("fk_assignments_hospital_id_hospitals")
        ),
        sa.ForeignKeyConstraint(
            ["paramedic_id"], ["staff.id"], name=op.f("fk_assignments_paramedic_id_staff")
        ),
        sa.ForeignKeyConstraint(
            ["unit_id"], ["units.id"], name=op.f("fk_assignments_unit_id_units")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_assignments")),
    )
    op.create_index("ix_assignments_call_id", "assignments", ["call_id"], unique=False)
    op.create_index("ix_assignments_notified_at", "assignments", ["notified_at"], unique=False)
    op.create_index(
        "uq_assignments_active_paramedic",
        "assignments",
        ["paramedic_id"],
        unique=True,
        postgresql_where=sa.text(
            "paramedic_id IS NOT NULL AND cleared_at IS NULL AND cancelled_at IS NULL"
        ),
    )
    op.create_index(
        "uq_assignments_active_unit",
        "assignments",
        ["unit_id"],
        unique=True,
        postgresql_where=sa.text("cleared_at IS NULL AND cancelled_at IS NULL"),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column(
            "at", sa.TIMESTAMP(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("operator_id", sa.Integer(), nullable=True),
        sa.Column("operator", sa.Text(), nullable=False),
        sa.Column("desk", sa.Text(), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("call_id", sa.Integer(), nullable=True),
        sa.Column("unit_id", sa.Integer(), nullable=True),
        sa.Column("hospital_id", sa.Integer(), nullable=True),
        sa.Column(
            "details",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(["call_id"], ["calls.id"], name=op.f("fk_audit_log_call_id_calls")),
        sa.ForeignKeyConstraint(
            ["hospital_id"], ["hospitals.id"], name=op.f("fk_audit_log_hospital_id_hospitals")
        ),
        sa.ForeignKeyConstraint(
            ["operator_id"], ["staff.id"], name=op.f("fk_audit_log_operator_id_staff")
        ),
        sa.ForeignKeyConstraint(["unit_id"], ["units.id"], name=op.f("fk_audit_log_unit_id_units")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"], unique=False)
    op.create_index("ix_audit_log_call_id", "audit_log", ["call_id"], unique=False)
    # The audit log is append-only for everyone, whatever their grants.
    op.execute(AUDIT_APPEND_ONLY)
    op.execute(
        "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log"
        " FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log")
    op.execute("DROP FUNCTION IF EXISTS audit_log_refuse_change()")
    op.drop_constraint(op.f("fk_staff_unit_id_units"), "staff", type_="foreignkey")
    op.drop_index("ix_audit_log_call_id", table_name="audit_log")
    op.drop_index("ix_audit_log_at", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_index(
        "uq_assignments_active_unit",
        table_name="assignments",
        postgresql_where=sa.text("cleared_at IS NULL AND cancelled_at IS NULL"),
    )
    op.drop_index(
        "uq_assignments_active_paramedic",
        table_name="assignments",
        postgresql_where=sa.text(
            "paramedic_id IS NOT NULL AND cleared_at IS NULL AND cancelled_at IS NULL"
        ),
    )
    op.drop_index("ix_assignments_notified_at", table_name="assignments")
    op.drop_index("ix_assignments_call_id", table_name="assignments")
    op.drop_table("assignments")
    op.drop_index("uq_units_code", table_name="units")
    op.drop_index("ix_units_status", table_name="units")
    op.drop_table("units")
    op.drop_index("uq_calls_number", table_name="calls")
    op.drop_index("ix_calls_received_at", table_name="calls")
    op.drop_index(
        "ix_calls_open",
        table_name="calls",
        postgresql_where=sa.text("status NOT IN ('CLOSED','CANCELLED')"),
    )
    op.drop_table("calls")
    op.drop_index("uq_stations_code_ci", table_name="stations")
    op.drop_table("stations")
    op.drop_index("uq_staff_username_ci", table_name="staff")
    op.drop_table("staff")
    op.drop_index("uq_places_name_ci", table_name="places")
    op.drop_table("places")
    op.drop_index("uq_hospitals_code", table_name="hospitals")
    op.drop_table("hospitals")
    op.execute(sa.schema.DropSequence(sa.Sequence("call_number_seq")))
