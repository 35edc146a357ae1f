"""Faster bulk loads of incidents: drop two foreign keys that cost more than they protect.

Checking incident -> partnership and incident -> import_run took about 6.5 s per million rows
each on a police.uk import. The data set already ties an incident to its partnership (and
cascades its deletion); import_run_id is provenance that may outlive a pruned run.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        ALTER TABLE incident DROP CONSTRAINT incident_partnership_id_fkey;
        ALTER TABLE incident DROP CONSTRAINT incident_import_run_id_fkey;
    """)


def downgrade() -> None:
    op.execute("""
        ALTER TABLE incident ADD CONSTRAINT incident_partnership_id_fkey
            FOREIGN KEY (partnership_id) REFERENCES partnership(id) ON DELETE CASCADE;
        ALTER TABLE incident ADD CONSTRAINT incident_import_run_id_fkey
            FOREIGN KEY (import_run_id) REFERENCES import_run(id) ON DELETE SET NULL;
    """)
