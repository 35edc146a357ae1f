"""Reserved: filled in by the work that needs it (an empty step until then).

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-25
"""
revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
