"""Camera status history: when each camera was operational, faulty, planned or decommissioned, so
"which cameras could have seen it" can be answered for a past time, not just for now.

One row per period; the open row (valid_to NULL) is the current status. A trigger keeps it: a new
camera opens a row from its created_at; a change of status closes the open row and opens the next
at the transaction's time. Existing cameras are backfilled with their current status from their
created_at (nothing older is known).

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-25
"""
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# Frozen history: the current definition of each function and trigger below is in app/sql/ (see 0014).

UPGRADE = r"""
CREATE TABLE camera_status_history (
    id              bigserial PRIMARY KEY,
    camera_id       integer NOT NULL REFERENCES camera(id) ON DELETE CASCADE,
    partnership_id  integer NOT NULL REFERENCES partnership(id) ON DELETE CASCADE,
    status          text NOT NULL
                    CHECK (status IN ('operational', 'faulty', 'decommissioned', 'planned')),
    valid_from      timestamptz NOT NULL,
    valid_to        timestamptz,
    CHECK (valid_to IS NULL OR valid_to >= valid_from)
);
-- "Status of camera X at time T" is the last row of X starting at or before T: one index probe.
CREATE INDEX camera_status_history_at_idx
    ON camera_status_history (camera_id, valid_from DESC, id DESC) INCLUDE (status, valid_to);
-- At most one open (current) period per camera.
CREATE UNIQUE INDEX camera_status_history_open_idx
    ON camera_status_history (camera_id) WHERE valid_to IS NULL;

CREATE FUNCTION safermap_camera_status_open() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO camera_status_history (camera_id, partnership_id, status, valid_from)
    VALUES (NEW.id, NEW.partnership_id, NEW.status, NEW.created_at);
    RETURN NULL;
END $$;

CREATE FUNCTION safermap_camera_status_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    closed timestamptz;
BEGIN
    -- greatest(): a camera created with a created_at later than now still gets an ordered history.
    UPDATE camera_status_history SET valid_to = greatest(valid_from, now())
    WHERE camera_id = NEW.id AND valid_to IS NULL
    RETURNING valid_to INTO closed;
    INSERT INTO camera_status_history (camera_id, partnership_id, status, valid_from)
    VALUES (NEW.id, NEW.partnership_id, NEW.status, coalesce(closed, now()));
    RETURN NULL;
END $$;

CREATE TRIGGER camera_status_open AFTER INSERT ON camera
    FOR EACH ROW EXECUTE FUNCTION safermap_camera_status_open();
CREATE TRIGGER camera_status_change AFTER UPDATE OF status ON camera
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION safermap_camera_status_change();

INSERT INTO camera_status_history (camera_id, partnership_id, status, valid_from)
SELECT id, partnership_id, status, created_at FROM camera;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute("""
        DROP TRIGGER IF EXISTS camera_status_change ON camera;
        DROP TRIGGER IF EXISTS camera_status_open ON camera;
        DROP FUNCTION IF EXISTS safermap_camera_status_change(), safermap_camera_status_open();
        DROP TABLE IF EXISTS camera_status_history;
    """)
