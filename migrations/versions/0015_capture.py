"""PCSO capture (issue 11): what the street survey stores, and what keeps offline retries honest.

- camera.location_accuracy_m: how far off the position may be (the device's GPS accuracy, metres);
  camera.owner_contact: how to reach a private owner.
- camera_revision: every version each camera has had (kept by triggers, app/sql/camera_revision.sql),
  so that a change based on an old version is merged three ways, and a deleted camera is known as
  deleted (410), never recreated. Existing cameras start with their current version.
- idempotency_key: the answer to each Idempotency-Key, per partnership, kept with the change it
  answers (app/idempotency.py).
- camera_photo: photos taken on the street, re-encoded without EXIF; the files live under
  settings.photo_dir, never in the web root.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-09
"""
from alembic import op

from app import sql

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

LOADS_SQL = {"camera_revision": "4c737126578790ff"}

UPGRADE = r"""
ALTER TABLE camera
    ADD COLUMN location_accuracy_m double precision CHECK (location_accuracy_m >= 0),
    ADD COLUMN owner_contact text NOT NULL DEFAULT '' CHECK (length(owner_contact) <= 500);

CREATE TABLE camera_revision (
    camera_id       integer NOT NULL,
    version         integer NOT NULL,
    partnership_id  integer NOT NULL REFERENCES partnership(id) ON DELETE CASCADE,
    properties      jsonb NOT NULL,
    geom            geometry(Point, 4326) NOT NULL,
    deleted         boolean NOT NULL DEFAULT false,
    changed_by      text,
    changed_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (camera_id, version)
);

CREATE TABLE idempotency_key (
    partnership_id  integer NOT NULL REFERENCES partnership(id) ON DELETE CASCADE,
    key             uuid NOT NULL,
    principal_id    integer NOT NULL REFERENCES principal(id) ON DELETE CASCADE,
    method          text NOT NULL,
    path            text NOT NULL,
    body_sha256     text NOT NULL,
    status          integer NOT NULL CHECK (status BETWEEN 200 AND 299),
    response        jsonb,
    headers         jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (partnership_id, key)
);
-- The purge of keys older than settings.idempotency_days, one partnership at a time.
CREATE INDEX idempotency_key_created_idx ON idempotency_key (partnership_id, created_at);

CREATE TABLE camera_photo (
    id              uuid PRIMARY KEY,
    camera_id       integer NOT NULL REFERENCES camera(id) ON DELETE CASCADE,
    partnership_id  integer NOT NULL REFERENCES partnership(id) ON DELETE CASCADE,
    format          text NOT NULL CHECK (format IN ('jpeg', 'png', 'webp')),
    width           integer NOT NULL CHECK (width > 0),
    height          integer NOT NULL CHECK (height > 0),
    bytes           integer NOT NULL CHECK (bytes > 0),
    thumbnail_bytes integer NOT NULL CHECK (thumbnail_bytes > 0),
    sha256          text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    created_by      integer REFERENCES principal(id) ON DELETE SET NULL,
    created_by_name text
);
CREATE INDEX camera_photo_camera_idx ON camera_photo (camera_id, created_at);
"""

# Every camera starts its history at the version it has now (nothing older is known).
BACKFILL = """
INSERT INTO camera_revision (camera_id, version, partnership_id, properties, geom, changed_at)
SELECT c.id, c.version, c.partnership_id, safermap_camera_revision_properties(c), c.geom, c.updated_at
FROM camera c
"""


def upgrade() -> None:
    op.execute(UPGRADE)
    sql.apply(op.get_bind(), *LOADS_SQL)
    op.execute(BACKFILL)


def downgrade() -> None:
    op.execute("""
        DROP TRIGGER IF EXISTS camera_revision_write ON camera;
        DROP FUNCTION IF EXISTS safermap_camera_revision();
        DROP FUNCTION IF EXISTS safermap_camera_revision_properties(camera);
        DROP TABLE camera_photo, idempotency_key, camera_revision;
        ALTER TABLE camera DROP COLUMN owner_contact, DROP COLUMN location_accuracy_m;
    """)
