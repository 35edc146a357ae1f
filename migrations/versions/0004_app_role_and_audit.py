"""The application's own database role, and the append-only audit trail.

The app connects as whatever DATABASE_URL names but works as the role `safermap_app` (set at
connection start-up, see app/db.py): it may read and write the data tables, and may only INSERT
and SELECT audit events. A trigger refuses UPDATE and DELETE of audit rows for everyone, as a
second wall should the grants ever be widened.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# Frozen history: the current definition of each function and trigger below is in app/sql/ (see 0014).

UPGRADE = r"""
DO $$ BEGIN
    CREATE ROLE safermap_app NOLOGIN;
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;
-- The migrating user must be able to become the app role (a superuser already can).
DO $$ BEGIN
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        EXECUTE format('GRANT safermap_app TO %I', current_user);
    END IF;
END $$;

CREATE TABLE audit_event (
    id              bigserial PRIMARY KEY,
    at              timestamptz NOT NULL DEFAULT clock_timestamp(),
    partnership_id  integer,            -- no foreign key: the trail outlives what it describes
    principal_id    integer,
    principal_name  text,
    action          text NOT NULL,      -- e.g. sign-in, sign-in-failed, camera.update, export, view.exact
    target          text NOT NULL DEFAULT '',
    detail          jsonb NOT NULL DEFAULT '{}',
    ip              text
);
CREATE INDEX audit_event_partnership_idx ON audit_event (partnership_id, at DESC);
CREATE INDEX audit_event_action_idx ON audit_event (action, at DESC);

CREATE FUNCTION safermap_audit_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit trail is append-only' USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER audit_event_append_only BEFORE UPDATE OR DELETE ON audit_event
    FOR EACH ROW EXECUTE FUNCTION safermap_audit_is_append_only();

GRANT USAGE ON SCHEMA public TO safermap_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO safermap_app;
GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO safermap_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO safermap_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO safermap_app;
REVOKE UPDATE, DELETE, TRUNCATE ON audit_event FROM safermap_app;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute("""
        DROP TABLE audit_event;
        DROP FUNCTION safermap_audit_is_append_only();
        REVOKE ALL ON ALL TABLES IN SCHEMA public FROM safermap_app;
        REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM safermap_app;
        ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON TABLES FROM safermap_app;
        ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON SEQUENCES FROM safermap_app;
        REVOKE USAGE ON SCHEMA public FROM safermap_app;
    """)
