"""Live state: triggers that NOTIFY every app process of what would make its memory wrong.

Each process keeps the principal behind a token or session, the data versions and the sharing
grants in memory (app/live_state.py) and LISTENs on 'safermap_live'. The triggers (app/sql/notify.sql)
send a short payload at commit for a revoked or re-dated token, a principal disabled, re-roled or
signed out everywhere, a partnership renamed or deleted, a data version bumped, a sharing rule
changed, and 'reset' when one of those tables is truncated.

Revision ID: 0017
Revises: 0014
Create Date: 2026-12-09
"""
from alembic import op

from app import sql

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

LOADS_SQL = {"notify": "f1c567d6952285b6"}

TRIGGERS = {
    "api_token": ("api_token_live_update", "api_token_live_delete", "api_token_live_truncate"),
    "principal": ("principal_live_update", "principal_live_delete", "principal_live_truncate"),
    "partnership": ("partnership_live_update", "partnership_live_delete", "partnership_live_truncate"),
    "data_version": ("data_version_live_insert", "data_version_live_update", "data_version_live_delete",
                     "data_version_live_truncate"),
    "sharing_rule": ("sharing_rule_live", "sharing_rule_live_truncate"),
}
FUNCTIONS = ("safermap_notify_token", "safermap_notify_principal", "safermap_notify_partnership",
             "safermap_notify_version", "safermap_notify_grants", "safermap_notify_reset")


def upgrade() -> None:
    sql.apply(op.get_bind(), *LOADS_SQL)


def downgrade() -> None:
    for table, names in TRIGGERS.items():
        for name in names:
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
    for name in FUNCTIONS:
        op.execute(f"DROP FUNCTION IF EXISTS {name}()")
