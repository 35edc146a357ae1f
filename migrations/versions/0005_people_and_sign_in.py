"""People: users with passwords, sign-in throttling, token expiry and revocation.

A principal is either a `user` (signs in with email and password) or a `service` (token only, as
every principal of the foundation was). Emails are unique across the server, ignoring case,
because a user signs in with the email alone. `session_epoch` is carried in the signed session
cookie: bumping it ends every session of that principal in every worker at once.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

UPGRADE = r"""
ALTER TABLE principal
    ADD COLUMN kind            text NOT NULL DEFAULT 'service' CHECK (kind IN ('user','service')),
    ADD COLUMN email           text CHECK (email IS NULL OR
                                           (length(email) BETWEEN 3 AND 254 AND email ~ '^[^@\s]+@[^@\s]+$')),
    ADD COLUMN password_hash   text,
    ADD COLUMN failed_sign_ins integer NOT NULL DEFAULT 0,
    ADD COLUMN locked_until    timestamptz,
    ADD COLUMN last_sign_in_at timestamptz,
    ADD COLUMN session_epoch   integer NOT NULL DEFAULT 0,
    ADD CONSTRAINT principal_user_has_email CHECK (kind = 'service' OR email IS NOT NULL);
CREATE UNIQUE INDEX principal_email_key ON principal (lower(email));

CREATE INDEX api_token_principal_idx ON api_token (principal_id);
"""

DOWNGRADE = r"""
DROP INDEX api_token_principal_idx;
DROP INDEX principal_email_key;
ALTER TABLE principal
    DROP CONSTRAINT principal_user_has_email,
    DROP COLUMN kind, DROP COLUMN email, DROP COLUMN password_hash, DROP COLUMN failed_sign_ins,
    DROP COLUMN locked_until, DROP COLUMN last_sign_in_at, DROP COLUMN session_epoch;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
