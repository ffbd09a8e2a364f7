"""database roles

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24

Two group roles give each kind of login exactly the rights it needs, enforced by PostgreSQL:

- `dispatch_operator` (desks, the CLI, the simulator): read everything; insert and update the
  operational tables; insert audit rows. No DELETE anywhere, no UPDATE of the audit log, no DDL.
- `dispatch_board` (the supervisor's wall board): SELECT only.

Login roles are made members of one of them by `dispatch-tui admin add-operator`. A trigger on
the audit log makes sure a non-superuser login writes audit rows only under its own name, so
nobody can act as someone else, whatever client they use.

Roles are cluster-wide: they are created when missing and shared by every dispatch database on
the server; the grants are per database. Creating roles needs CREATEROLE (the embedded server's
superuser has it; on a managed server, run the upgrade as its admin user).
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

OPERATIONAL = ("calls", "units", "hospitals", "assignments")

CREATE_ROLES = """
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'dispatch_operator') THEN
        CREATE ROLE dispatch_operator NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'dispatch_board') THEN
        CREATE ROLE dispatch_board NOLOGIN;
    END IF;
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO dispatch_operator, dispatch_board',
                   current_database());
END
$$
"""

# The operator named in an audit row must be the login itself (superusers and the app's own
# maintenance connections excepted), so a modified client cannot write as someone else.
AUDIT_IDENTITY = """
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


def upgrade() -> None:
    op.execute(CREATE_ROLES)
    op.execute("GRANT USAGE ON SCHEMA public TO dispatch_operator, dispatch_board")
    op.execute("GRANT SELECT ON ALL TABLES IN SCHEMA public TO dispatch_operator, dispatch_board")
    op.execute(
        "GRANT INSERT, UPDATE ON calls, units, hospitals, assignments TO dispatch_operator"
    )
    op.execute("GRANT INSERT ON audit_log TO dispatch_operator")
    op.execute("GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO dispatch_operator")
    op.execute("REVOKE ALL ON audit_log FROM PUBLIC")
    op.execute(AUDIT_IDENTITY)
    op.execute(
        "CREATE TRIGGER audit_log_operator_is_login BEFORE INSERT ON audit_log"
        " FOR EACH ROW EXECUTE FUNCTION audit_log_check_operator()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS audit_log_operator_is_login ON audit_log")
    op.execute("DROP FUNCTION IF EXISTS audit_log_check_operator()")
    op.execute("REVOKE ALL ON ALL TABLES IN SCHEMA public FROM dispatch_operator, dispatch_board")
    op.execute("REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM dispatch_operator")
    op.execute("REVOKE USAGE ON SCHEMA public FROM dispatch_operator, dispatch_board")
    # The roles are cluster-wide and may serve other dispatch databases: they stay.
