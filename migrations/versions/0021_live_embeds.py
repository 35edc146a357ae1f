"""Live state for embedded maps: a trigger that NOTIFIES every app process when an embed is revoked,
re-dated, re-keyed, changed or deleted (and 'reset' when the table is truncated), so that embed
tiles, like other callers' tiles, are answered from each process's memory (app/live_state.py)
with no database round trip for the embed's key.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-03
"""
from alembic import op

from app import sql

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

LOADS_SQL = {"notify": "c94d26a932ef9b18"}


def upgrade() -> None:
    sql.apply(op.get_bind(), *LOADS_SQL)


def downgrade() -> None:
    for name in ("embed_live_update", "embed_live_delete", "embed_live_truncate"):
        op.execute(f"DROP TRIGGER IF EXISTS {name} ON embed")
    op.execute("DROP FUNCTION IF EXISTS safermap_notify_embed()")
