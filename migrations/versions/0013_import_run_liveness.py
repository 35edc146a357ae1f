"""Import run liveness: a run that ends without finishing is 'interrupted' (its process died, so
its advisory lock went with its connection; see app.ingest.run_record) or 'cancelled' (SIGINT or
SIGTERM caught, data rolled back). progress_at is the heartbeat written with rows_total while a
file streams in, so an interrupted run shows how far it got and when it was last alive.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02
"""
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

UPGRADE = r"""
ALTER TABLE import_run DROP CONSTRAINT import_run_status_check;
ALTER TABLE import_run ADD CONSTRAINT import_run_status_check
    CHECK (status IN ('running', 'loaded', 'failed', 'refused', 'interrupted', 'cancelled'));
ALTER TABLE import_run ADD COLUMN progress_at timestamptz;
"""

DOWNGRADE = r"""
UPDATE import_run SET status = 'failed' WHERE status IN ('interrupted', 'cancelled');
ALTER TABLE import_run DROP COLUMN progress_at;
ALTER TABLE import_run DROP CONSTRAINT import_run_status_check;
ALTER TABLE import_run ADD CONSTRAINT import_run_status_check
    CHECK (status IN ('running', 'loaded', 'failed', 'refused'));
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
