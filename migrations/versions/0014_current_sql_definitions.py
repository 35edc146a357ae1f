"""Current SQL definitions: every function and trigger is (re)created from its file in app/sql/.

Until here each function lived in the migration that last changed it (the camera trigger in 0001
and twice in 0010); from here on what a function does now is in app/sql/<topic>.sql, and the
migrations before this one keep their frozen copies only to replay history. To change a function or
trigger: edit its .sql file and add a migration that loads it, recording the file's digest in
LOADS_SQL as this one does (the rule in full: app/sql/__init__.py).

This revision also gives a camera's plain coverage one definition: safermap_plain_coverage (with its
numbers in safermap_camera_rule), used by the camera trigger and by footage lookups for cameras
decommissioned since, which used to redraw the wedge with 7 m per metre of height and ignore the
range that resolution and purpose give. Stored coverage is unchanged: the trigger computes the same
values as before, so nothing is recomputed.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02
"""
from alembic import op

from app import sql

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


# Every file, in app.sql.ORDER, with the digest of the text this revision was written against
# (tests/test_sql_definitions.py checks the newest record of each file against the file).
LOADS_SQL = {
    "versions": "49ab5f3c9f15721c",
    "audit": "6ed856dbf811ca5b",
    "datasets": "fa92638d20134ead",
    "sharing": "14b93cddb21c06b3",
    "anonymous_locations": "cda61b375ac82dad",
    "routing": "35b73878d10e1162",
    "coverage": "484bcd2c340fa588",
    "camera_status": "28d04dcdafa29829",
    "coverage_union": "5db5bc607be96014",
}


def upgrade() -> None:
    sql.apply(op.get_bind(), *LOADS_SQL)


def downgrade() -> None:
    # Nothing to undo: this revision adds no table or column, and the definitions it loaded run on
    # 0013's schema with the same results (the camera trigger keeps calling safermap_plain_coverage).
    # Restoring the older bodies would take yet another frozen copy of the camera trigger.
    pass
