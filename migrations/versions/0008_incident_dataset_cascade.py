"""Bulk loads of incidents without a per-row foreign-key check on the data set.

The check of incident -> dataset took about 9 s per million rows of a police.uk import (a row
lock on the data set for every incident). The import creates and locks its data set itself, and
incidents of a deleted data set (or partnership) are removed by a statement trigger instead of
the cascade. (TRUNCATE of dataset no longer reaches incident: truncate both.)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25
"""
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# Frozen history: the current definition of each function and trigger below is in app/sql/ (see 0014).


def upgrade() -> None:
    op.execute("""
        ALTER TABLE incident DROP CONSTRAINT incident_dataset_id_fkey;

        -- A partnership being deleted takes its rows with it; their versions need no bump (and
        -- cannot have one: the partnership row is already gone within the same statement).
        CREATE OR REPLACE FUNCTION safermap_bump_version() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'DELETE' THEN
                INSERT INTO data_version (partnership_id, source, version)
                SELECT d.partnership_id, TG_TABLE_NAME, nextval('data_version_seq')
                FROM (SELECT DISTINCT partnership_id FROM old_rows) AS d
                WHERE EXISTS (SELECT 1 FROM partnership p WHERE p.id = d.partnership_id)
                ON CONFLICT (partnership_id, source) DO UPDATE SET version = EXCLUDED.version;
            ELSE
                INSERT INTO data_version (partnership_id, source, version)
                SELECT d.partnership_id, TG_TABLE_NAME, nextval('data_version_seq')
                FROM (SELECT DISTINCT partnership_id FROM new_rows) AS d
                ON CONFLICT (partnership_id, source) DO UPDATE SET version = EXCLUDED.version;
            END IF;
            RETURN NULL;
        END $$;

        CREATE FUNCTION safermap_dataset_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            DELETE FROM incident WHERE dataset_id IN (SELECT id FROM old_rows);
            RETURN NULL;
        END $$;
        CREATE TRIGGER dataset_deleted_incidents AFTER DELETE ON dataset
            REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION safermap_dataset_deleted();
    """)


def downgrade() -> None:
    op.execute("""
        DROP TRIGGER dataset_deleted_incidents ON dataset;
        DROP FUNCTION safermap_dataset_deleted();
        DELETE FROM incident i WHERE NOT EXISTS (SELECT 1 FROM dataset d WHERE d.id = i.dataset_id);
        ALTER TABLE incident ADD CONSTRAINT incident_dataset_id_fkey
            FOREIGN KEY (dataset_id) REFERENCES dataset(id) ON DELETE CASCADE;
    """)
