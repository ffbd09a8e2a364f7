"""each role its own rights; the audit log stamped by the database

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25

0003 gave every staff login the same rights (insert and update every operational table) and
trusted the client for an audit row's time and operator id. Here:

- **A group role per staff role**, each a member of `dispatch_operator`, which keeps what every
  staff login shares: read everything, append audit rows. Column grants give each role only
  what the service writes for it:
  - `dispatch_dispatcher`: new calls and assignments; calls, assignments and units' changing
    columns (never an id, a call number, when a call came in or who took it); on `hospitals`
    UPDATE of `id` only, because a dispatch locks its destination FOR SHARE, which PostgreSQL
    allows only with some UPDATE right; a trigger keeps hospital ids from changing.
  - `dispatch_paramedic`: a unit's status and position, an assignment's times and destination,
    a call's status, destination and end; row security narrows each to the unit the
    paramedic crews, its open assignment and the open calls it is on.
  - `dispatch_supervisor`, `dispatch_admin`: hospitals' status and beds; new staff rows; new
    logins through `dispatch_create_login()`.
  Existing logins (members of `dispatch_operator` with a staff row here) join their role's group.
- **`dispatch_create_login(login, board, password)`**, SECURITY DEFINER, run by supervisors and
  admins (`admin add-operator`): it makes a new login for a staff row in the group of that row's
  role, or a wall display's login (`board`) in `dispatch_board` only. It never takes over a login
  that exists, unless the caller owns the schema (a superuser, or the admin login that ran the
  migrations).
- **The audit log**: a BEFORE INSERT trigger stamps `at` with the clock, and for a login that
  does not own the log binds `operator` and `operator_id` to the staff row of `session_user`,
  refusing a login with none or a row naming anyone else. The owner (the embedded server's
  superuser, a managed server's admin login) writes for the operator the app names (`--as`): it
  could switch the trigger off anyway. Both audit triggers are ENABLE ALWAYS, so
  `session_replication_role = replica` no longer skips them. A superuser can still drop them.

The functions run with a fixed search path that puts `pg_temp` last: a session's temporary
tables come first in its own search path, so a trigger that read `pg_roles` or `staff`
unqualified read whatever the login had put there (0003's check could be fooled that way).

Roles are cluster-wide, created when missing and shared by every dispatch database on the
server; the grants and policies are per database.
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# One group per staff role, named by the literal values of rules.enums.Role and written out in
# each statement: migrations never import application code (a later change to it must not
# rewrite history), and no SQL is built from strings here.

CREATE_ROLES = """
DO $$
DECLARE
    name text;
BEGIN
    FOREACH name IN ARRAY ARRAY['dispatch_dispatcher', 'dispatch_paramedic',
                                'dispatch_supervisor', 'dispatch_admin'] LOOP
        BEGIN
            IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = name) THEN
                EXECUTE format('CREATE ROLE %I NOLOGIN', name);
            END IF;
            -- Each staff role is an operator: it reads everything and appends audit rows.
            IF NOT pg_has_role(name, 'dispatch_operator', 'MEMBER') THEN
                EXECUTE format('GRANT dispatch_operator TO %I', name);
            END IF;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;  -- another database's upgrade on this server did it a moment ago
        END;
    END LOOP;
END
$$
"""

# Logins made under 0003 keep working: each joins the group of its staff row's role.
MOVE_LOGINS = """
DO $$
DECLARE
    r record;
BEGIN
    FOR r IN
        SELECT m.rolname AS login, s.role
        FROM pg_auth_members am
        JOIN pg_roles g ON g.oid = am.roleid AND g.rolname = 'dispatch_operator'
        JOIN pg_roles m ON m.oid = am.member AND m.rolcanlogin
        JOIN staff s ON lower(s.username) = lower(m.rolname)
    LOOP
        EXECUTE format('GRANT %I TO %I', 'dispatch_' || r.role, r.login);
    END LOOP;
END
$$
"""

AUDIT_COLUMNS = "at, operator_id, operator, desk, action, call_id, unit_id, hospital_id, details"
CALL_INTAKE = (
    "caller_name, caller_phone, location_text, lat, lon, place_id, nature, priority,"
    " determinant, notes"
)
CALL_PROGRESS = "status, destination_hospital_id, closed_at, disposition"
UNIT_CHANGES = "status, status_since, lat, lon, position_at"
ASSIGNMENT_STEPS = (
    "hospital_id, en_route_at, on_scene_at, transporting_at, at_destination_at, cleared_at"
)

GRANTS = (
    # What 0003 gave every staff login goes; what they share stays with dispatch_operator.
    "REVOKE INSERT, UPDATE ON calls, units, hospitals, assignments, audit_log"
    " FROM dispatch_operator",
    "REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM dispatch_operator",
    # Every column but the id: a row's place in the log is the sequence's, not the writer's.
    f"GRANT INSERT ({AUDIT_COLUMNS}) ON audit_log TO dispatch_operator",
    "GRANT USAGE ON SEQUENCE audit_log_id_seq TO dispatch_operator",
    # Dispatchers.
    f"GRANT INSERT ({CALL_INTAKE}, created_by_id) ON calls TO dispatch_dispatcher",
    f"GRANT UPDATE ({CALL_INTAKE}, {CALL_PROGRESS}, dispatched_by_id, first_dispatched_at,"
    " cancelled_at) ON calls TO dispatch_dispatcher",
    "GRANT INSERT (call_id, unit_id, paramedic_id, dispatcher_id, hospital_id, notified_at)"
    " ON assignments TO dispatch_dispatcher",
    f"GRANT UPDATE (paramedic_id, {ASSIGNMENT_STEPS}, cancelled_at) ON assignments"
    " TO dispatch_dispatcher",
    f"GRANT UPDATE ({UNIT_CHANGES}) ON units TO dispatch_dispatcher",
    "GRANT UPDATE (id) ON hospitals TO dispatch_dispatcher",  # FOR SHARE only: see the docstring
    "GRANT USAGE ON SEQUENCE calls_id_seq, call_number_seq, assignments_id_seq"
    " TO dispatch_dispatcher",
    # Paramedics (row security below narrows these to their own unit).
    f"GRANT UPDATE ({UNIT_CHANGES}) ON units TO dispatch_paramedic",
    f"GRANT UPDATE ({ASSIGNMENT_STEPS}) ON assignments TO dispatch_paramedic",
    f"GRANT UPDATE ({CALL_PROGRESS}) ON calls TO dispatch_paramedic",
    # Supervisors and admins.
    "GRANT UPDATE (status, status_since, beds_available) ON hospitals"
    " TO dispatch_supervisor, dispatch_admin",
    "GRANT INSERT (username, full_name, role, unit_id) ON staff"
    " TO dispatch_supervisor, dispatch_admin",
    "GRANT USAGE ON SEQUENCE staff_id_seq TO dispatch_supervisor, dispatch_admin",
)

# The unit the session's paramedic crews (NULL for anyone else). Policies are stored parsed,
# with their tables resolved, so the search path cannot redirect this.
CREWED = (
    "(SELECT s.unit_id FROM staff s"
    " WHERE lower(s.username) = lower(session_user::text) AND s.active)"
)
OPEN_CALL_OF_THE_CREW = (
    f"EXISTS (SELECT 1 FROM assignments a WHERE a.call_id = calls.id AND a.unit_id = {CREWED})"
)
ROW_SECURITY = (
    "ALTER TABLE calls ENABLE ROW LEVEL SECURITY",
    "ALTER TABLE units ENABLE ROW LEVEL SECURITY",
    "ALTER TABLE assignments ENABLE ROW LEVEL SECURITY",
    # Every row for every login that reads; what it may do with a row is its grants'.
    "CREATE POLICY calls_every_row ON calls TO dispatch_operator, dispatch_board"
    " USING (true) WITH CHECK (true)",
    "CREATE POLICY units_every_row ON units TO dispatch_operator, dispatch_board"
    " USING (true) WITH CHECK (true)",
    "CREATE POLICY assignments_every_row ON assignments TO dispatch_operator, dispatch_board"
    " USING (true) WITH CHECK (true)",
    # A paramedic changes only the unit they crew, its open assignment, and the open calls it
    # is on (FOR UPDATE locks are held to the same rows).
    "CREATE POLICY units_crewed_only ON units AS RESTRICTIVE FOR UPDATE TO dispatch_paramedic"
    f" USING (id = {CREWED})",
    "CREATE POLICY assignments_crewed_only ON assignments AS RESTRICTIVE FOR UPDATE"
    f" TO dispatch_paramedic USING (unit_id = {CREWED} AND cleared_at IS NULL"
    f" AND cancelled_at IS NULL) WITH CHECK (unit_id = {CREWED})",
    "CREATE POLICY calls_crewed_only ON calls AS RESTRICTIVE FOR UPDATE TO dispatch_paramedic"
    f" USING (status NOT IN ('CLOSED', 'CANCELLED') AND {OPEN_CALL_OF_THE_CREW})"
    f" WITH CHECK ({OPEN_CALL_OF_THE_CREW})",
)
DROP_ROW_SECURITY = (
    "DROP POLICY IF EXISTS calls_crewed_only ON calls",
    "DROP POLICY IF EXISTS assignments_crewed_only ON assignments",
    "DROP POLICY IF EXISTS units_crewed_only ON units",
    "DROP POLICY IF EXISTS assignments_every_row ON assignments",
    "DROP POLICY IF EXISTS units_every_row ON units",
    "DROP POLICY IF EXISTS calls_every_row ON calls",
    "ALTER TABLE assignments DISABLE ROW LEVEL SECURITY",
    "ALTER TABLE units DISABLE ROW LEVEL SECURITY",
    "ALTER TABLE calls DISABLE ROW LEVEL SECURITY",
)

# Whether the session's login holds the rights of the table's owner (superusers do): such a
# login could switch any trigger off, so it is trusted to name the operator (`--as`).
OWNS = "pg_has_role(session_user, (SELECT relowner FROM pg_class WHERE oid = {table}), 'USAGE')"

AUDIT_WHO_AND_WHEN = f"""
CREATE FUNCTION audit_log_who_and_when() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    me record;
BEGIN
    -- The clock now, not the client's word nor the transaction's start.
    NEW.at := clock_timestamp();
    IF {OWNS.format(table="TG_RELID")} THEN
        RETURN NEW;
    END IF;
    SELECT id, username INTO me FROM staff
    WHERE lower(username) = lower(session_user::text) AND active;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'logged in as %, who is not an active operator of this service',
            session_user USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF lower(NEW.operator) <> lower(me.username) THEN
        RAISE EXCEPTION 'logged in as %, cannot act as %', session_user, NEW.operator
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NEW.operator_id <> me.id THEN
        RAISE EXCEPTION 'logged in as %, whose operator id is not %', session_user,
            NEW.operator_id USING ERRCODE = 'insufficient_privilege';
    END IF;
    NEW.operator := me.username;
    NEW.operator_id := me.id;
    RETURN NEW;
END
$$
"""

# 0003's check, restored by the downgrade.
AUDIT_IDENTITY_0003 = """
CREATE FUNCTION audit_log_check_operator() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = session_user)
       AND lower(NEW.operator) <> lower(session_user) THEN
        RAISE EXCEPTION 'logged in as %, cannot act as %', session_user, NEW.operator
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$
"""

ID_NEVER_CHANGES = """
CREATE FUNCTION dispatch_refuse_new_id() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the id of a row of % never changes', TG_TABLE_NAME;
END
$$
"""

CREATE_LOGIN = f"""
CREATE FUNCTION dispatch_create_login(login text, board boolean, secret text DEFAULT NULL)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    is_owner boolean := {OWNS.format(table="'staff'::regclass")};
    person record;
    grp text;
BEGIN
    IF NOT is_owner AND NOT EXISTS (
        SELECT 1 FROM staff WHERE lower(username) = lower(session_user::text) AND active
                              AND role IN ('supervisor', 'admin')) THEN
        RAISE EXCEPTION 'only an admin or a supervisor may make logins'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF login !~ '^[A-Za-z0-9_.-]{{1,63}}$' THEN
        RAISE EXCEPTION 'not a user name: %', left(login, 63)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT role INTO person FROM staff WHERE lower(username) = lower(login) AND active;
    IF board THEN
        IF FOUND THEN
            RAISE EXCEPTION '% is on the staff list; a board login is a wall display''s', login
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        grp := 'dispatch_board';
    ELSIF NOT FOUND THEN
        RAISE EXCEPTION '% is not an active operator of this service', login
            USING ERRCODE = 'invalid_parameter_value';
    ELSE
        grp := 'dispatch_' || person.role;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = login) THEN
        -- Someone's login already (perhaps on another database of this server): only the
        -- schema's owner may hand it over.
        IF NOT is_owner THEN
            RAISE EXCEPTION 'the database already has a login %; only its admin may reuse it',
                login USING ERRCODE = 'duplicate_object';
        END IF;
        EXECUTE format('ALTER ROLE %I LOGIN', login);
    ELSE
        EXECUTE format('CREATE ROLE %I LOGIN', login);
    END IF;
    IF secret IS NOT NULL THEN
        EXECUTE format('ALTER ROLE %I PASSWORD %L', login, secret);
    END IF;
    EXECUTE format('GRANT %I TO %I', grp, login);
    IF NOT board THEN
        -- Anyone on the staff may open the board, which narrows its sessions to this group.
        EXECUTE format('GRANT dispatch_board TO %I', login);
    END IF;
END
$$
"""


def upgrade() -> None:
    op.execute(CREATE_ROLES)
    op.execute(MOVE_LOGINS)
    for statement in GRANTS:
        op.execute(statement)
    for statement in ROW_SECURITY:
        op.execute(statement)
    op.execute(ID_NEVER_CHANGES)
    op.execute(
        "CREATE TRIGGER hospitals_id_never_changes BEFORE UPDATE OF id ON hospitals"
        " FOR EACH ROW WHEN (NEW.id IS DISTINCT FROM OLD.id)"
        " EXECUTE FUNCTION dispatch_refuse_new_id()"
    )
    op.execute(CREATE_LOGIN)
    op.execute("REVOKE ALL ON FUNCTION dispatch_create_login(text, boolean, text) FROM PUBLIC")
    op.execute(
        "GRANT EXECUTE ON FUNCTION dispatch_create_login(text, boolean, text)"
        " TO dispatch_supervisor, dispatch_admin"
    )
    op.execute("DROP TRIGGER audit_log_operator_is_login ON audit_log")
    op.execute("DROP FUNCTION audit_log_check_operator()")
    op.execute(AUDIT_WHO_AND_WHEN)
    op.execute(
        "CREATE TRIGGER audit_log_who_and_when BEFORE INSERT ON audit_log"
        " FOR EACH ROW EXECUTE FUNCTION audit_log_who_and_when()"
    )
    # ALWAYS: fired in replica mode too (a superuser's `session_replication_role = replica`
    # otherwise skips every ordinary trigger).
    op.execute("ALTER TABLE audit_log ENABLE ALWAYS TRIGGER audit_log_who_and_when")
    op.execute("ALTER TABLE audit_log ENABLE ALWAYS TRIGGER audit_log_append_only")


def downgrade() -> None:
    op.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only")
    op.execute("DROP TRIGGER IF EXISTS audit_log_who_and_when ON audit_log")
    op.execute("DROP FUNCTION IF EXISTS audit_log_who_and_when()")
    op.execute(AUDIT_IDENTITY_0003)
    op.execute(
        "CREATE TRIGGER audit_log_operator_is_login BEFORE INSERT ON audit_log"
        " FOR EACH ROW EXECUTE FUNCTION audit_log_check_operator()"
    )
    op.execute("DROP FUNCTION IF EXISTS dispatch_create_login(text, boolean, text)")
    op.execute("DROP TRIGGER IF EXISTS hospitals_id_never_changes ON hospitals")
    op.execute("DROP FUNCTION IF EXISTS dispatch_refuse_new_id()")
    for statement in DROP_ROW_SECURITY:
        op.execute(statement)
    op.execute(
        "REVOKE ALL ON ALL TABLES IN SCHEMA public"
        " FROM dispatch_dispatcher, dispatch_paramedic, dispatch_supervisor, dispatch_admin"
    )
    op.execute(
        "REVOKE ALL ON ALL SEQUENCES IN SCHEMA public"
        " FROM dispatch_dispatcher, dispatch_paramedic, dispatch_supervisor, dispatch_admin"
    )
    op.execute(
        "REVOKE INSERT (at, operator_id, operator, desk, action, call_id, unit_id, hospital_id,"
        " details) ON audit_log FROM dispatch_operator"
    )
    op.execute("GRANT INSERT, UPDATE ON calls, units, hospitals, assignments TO dispatch_operator")
    op.execute("GRANT INSERT ON audit_log TO dispatch_operator")
    op.execute("GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO dispatch_operator")
    # The roles and their members are cluster-wide and may serve other dispatch databases: they
    # stay.
