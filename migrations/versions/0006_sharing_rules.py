"""Sharing rules, sensitive categories, anonymous points and sanitised incident locations.

Every face that shows incidents (API, categories, tiles, TileJSON bounds, pages) reads them through
ONE function, `safermap_visible_incidents(partnership, role, agency, cap)`: it decides which data
sets a caller may see and at which level, hides sensitive categories from roles below their least
role, and hands out the anonymous point instead of the real one below 'exact'. It is a plain SQL
function (one SELECT), so the planner inlines it and filters on its `geom` still use the GiST
indexes (a UNION ALL of an exact branch over incident.geom and an anonymous one over geom_anon).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# Frozen history: the current definition of each function and trigger below is in app/sql/ (see 0014).

UPGRADE = r"""
-- Levels are ordered none < aggregate < sanitised < exact.
CREATE FUNCTION safermap_level_rank(level text) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(array_position(ARRAY['none', 'aggregate', 'sanitised', 'exact'], level) - 1, 0)
$$;

-- Roles least to most privileged (app/roles.py). An unknown role (an embed) ranks below all.
CREATE FUNCTION safermap_role_rank(role text) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(array_position(ARRAY['viewer', 'pcso', 'operator', 'analyst', 'admin'], role) - 1, -1)
$$;

CREATE TABLE sharing_rule (
    id                  serial PRIMARY KEY,
    partnership_id      integer NOT NULL REFERENCES partnership(id) ON DELETE CASCADE,  -- the data set's
    dataset_id          integer NOT NULL REFERENCES dataset(id) ON DELETE CASCADE,
    -- an agency of any partnership (a county hub): the only way data crosses partnerships
    grantee_agency_id   integer REFERENCES agency(id) ON DELETE CASCADE,
    grantee_role        text CHECK (grantee_role IN ('admin','analyst','operator','pcso','viewer')),
    level               text NOT NULL CHECK (level IN ('none','aggregate','sanitised','exact')),
    created_at          timestamptz NOT NULL DEFAULT now(),
    created_by          integer REFERENCES principal(id) ON DELETE SET NULL,
    CHECK ((grantee_agency_id IS NULL) <> (grantee_role IS NULL))
);
CREATE UNIQUE INDEX sharing_rule_agency_key ON sharing_rule (dataset_id, grantee_agency_id)
    WHERE grantee_agency_id IS NOT NULL;
CREATE UNIQUE INDEX sharing_rule_role_key ON sharing_rule (dataset_id, grantee_role)
    WHERE grantee_role IS NOT NULL;
CREATE INDEX sharing_rule_grantee_idx ON sharing_rule (grantee_agency_id);

CREATE TABLE sensitive_category (
    partnership_id  integer NOT NULL REFERENCES partnership(id) ON DELETE CASCADE,
    category        text NOT NULL CHECK (length(category) BETWEEN 1 AND 200),
    least_role      text NOT NULL CHECK (least_role IN ('viewer','pcso','operator','analyst','admin')),
    PRIMARY KEY (partnership_id, category)
);

-- Street-based anonymous points, in the manner of police.uk's snap points.
CREATE TABLE anon_point (
    id              bigserial PRIMARY KEY,
    partnership_id  integer NOT NULL REFERENCES partnership(id) ON DELETE CASCADE,
    geom            geometry(Point, 4326) NOT NULL,
    geom_m          geometry(Point) NOT NULL,   -- the same point in the partnership's metric CRS
    label           text NOT NULL
);
CREATE INDEX anon_point_geom_m_idx ON anon_point USING gist (geom_m);

ALTER TABLE incident ADD COLUMN geom_anon geometry(Point, 4326), ADD COLUMN anon_point_id bigint;
CREATE INDEX incident_geom_anon_idx ON incident USING gist (geom_anon);

-- The anonymous location of a point: the nearest anonymous point of the partnership within
-- 500 m (ties by id, so it is always the same one), else the centre of its 100 m cell in the
-- partnership's metric CRS (anon_point_id NULL). Deterministic: same input, same answer.
CREATE FUNCTION safermap_anon_location(p_partnership integer, p_geom geometry)
RETURNS TABLE (anon_point_id bigint, geom_anon geometry)
LANGUAGE sql STABLE AS $$
    SELECT a.id,
           coalesce(a.geom, ST_Transform(ST_SetSRID(ST_MakePoint(
               floor(ST_X(m.g) / 100) * 100 + 50, floor(ST_Y(m.g) / 100) * 100 + 50), pa.srid), 4326))
    FROM partnership pa
    CROSS JOIN LATERAL (SELECT ST_Transform(p_geom, pa.srid) AS g OFFSET 0) AS m  -- once, not per candidate
    LEFT JOIN LATERAL (
        SELECT c.id, c.geom FROM (  -- KNN on the metric index; ties go to the lowest id
            SELECT ap.id, ap.geom, ap.geom_m <-> m.g AS dist FROM anon_point ap
            WHERE ap.partnership_id = p_partnership AND ST_DWithin(ap.geom_m, m.g, 500)
            ORDER BY ap.geom_m <-> m.g LIMIT 4
        ) AS c
        ORDER BY c.dist, c.id LIMIT 1
    ) AS a ON true
    WHERE pa.id = p_partnership
$$;

-- New incidents get their anonymous location at once. Work is per distinct point (police.uk
-- points are already shared by thousands of incidents), but updating rows just written costs a
-- second write of each and of its index entries, so bulk loads should set geom_anon while
-- inserting (the police.uk import does, with safermap_anon_location per distinct point): rows that
-- arrive with it set cost only the scan of the transition table here.
-- (enable_seqscan off for this function only: on a small or freshly built anon_point table the
-- planner would otherwise scan every anonymous point for every incident point instead of KNN.)
CREATE FUNCTION safermap_incident_anonymise() RETURNS trigger LANGUAGE plpgsql
SET enable_seqscan = off AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM new_rows WHERE geom_anon IS NULL AND geom IS NOT NULL) THEN
        WITH d AS (
            SELECT DISTINCT ON (n.partnership_id, ST_AsEWKB(n.geom))
                   n.partnership_id, ST_AsEWKB(n.geom) AS k, n.geom FROM new_rows n
            WHERE n.geom_anon IS NULL AND n.geom IS NOT NULL
        ), m AS MATERIALIZED (  -- once per distinct point (a fence); keyed by its bytes: hashable, exact
            SELECT d.partnership_id, d.k, l.anon_point_id, l.geom_anon
            FROM d CROSS JOIN LATERAL safermap_anon_location(d.partnership_id, d.geom) AS l
        )
        UPDATE incident i SET geom_anon = m.geom_anon, anon_point_id = m.anon_point_id
        FROM new_rows n JOIN m ON m.partnership_id = n.partnership_id AND m.k = ST_AsEWKB(n.geom)
        WHERE i.id = n.id AND n.geom_anon IS NULL;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER incident_anonymise AFTER INSERT ON incident
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION safermap_incident_anonymise();

-- (Re)build a partnership's anonymous points from its named streets: points along each street
-- about every 175 m (a short street gets its middle), one per street name and 100 m square, then
-- move every incident of the partnership to its new anonymous location. Returns the point count.
CREATE FUNCTION safermap_refresh_anon_points(p_partnership integer) RETURNS integer
LANGUAGE plpgsql SET enable_seqscan = off AS $$
DECLARE
    crs integer;
    n   integer;
BEGIN
    SELECT srid INTO crs FROM partnership WHERE id = p_partnership;
    IF crs IS NULL THEN
        RAISE EXCEPTION 'no partnership %', p_partnership USING ERRCODE = 'no_data_found';
    END IF;
    DELETE FROM anon_point WHERE partnership_id = p_partnership;
    INSERT INTO anon_point (partnership_id, geom, geom_m, label)
    SELECT p_partnership, ST_Transform(ST_SetSRID(pt, crs), 4326), ST_SetSRID(pt, crs), 'On or near ' || name
    FROM (
        SELECT DISTINCT ON (name, floor(ST_X(pt) / 100), floor(ST_Y(pt) / 100)) name, pt
        FROM (
            SELECT s.name, (ST_Dump(CASE WHEN ST_Length(g) < 175 THEN ST_LineInterpolatePoint(g, 0.5)
                                    ELSE ST_LineInterpolatePoints(g, 175 / ST_Length(g), true) END)).geom AS pt
            FROM (SELECT name, ST_Transform(geom, crs) AS g FROM street
                  WHERE partnership_id = p_partnership AND coalesce(btrim(name), '') <> '') AS s
        ) AS raw
        ORDER BY name, floor(ST_X(pt) / 100), floor(ST_Y(pt) / 100), ST_X(pt), ST_Y(pt)
    ) AS pts;
    GET DIAGNOSTICS n = ROW_COUNT;

    WITH d AS (
        SELECT DISTINCT ON (ST_AsEWKB(geom)) ST_AsEWKB(geom) AS k, geom FROM incident
        WHERE partnership_id = p_partnership AND geom IS NOT NULL
    ), m AS MATERIALIZED (  -- once per distinct point
        SELECT d.k, l.anon_point_id, l.geom_anon
        FROM d CROSS JOIN LATERAL safermap_anon_location(p_partnership, d.geom) AS l
    )
    UPDATE incident i SET geom_anon = m.geom_anon, anon_point_id = m.anon_point_id
    FROM m
    WHERE i.partnership_id = p_partnership AND ST_AsEWKB(i.geom) = m.k
      AND (i.anon_point_id IS DISTINCT FROM m.anon_point_id OR i.geom_anon IS NULL
           OR NOT ST_Equals(i.geom_anon, m.geom_anon));
    RETURN n;
END $$;

-- The level at which a caller (partnership, role, agency) sees each data set, capped at p_cap
-- (an embed passes 'sanitised'). Members of the owning agency and the partnership's admins see
-- their own data exactly; otherwise a rule for the caller's agency (of any partnership), else a
-- rule for the caller's role (same partnership only), else the data set's own default for its
-- partnership; another partnership without an agency rule sees nothing.
CREATE FUNCTION safermap_dataset_levels(p_partnership integer, p_role text, p_agency integer,
                                        p_cap text DEFAULT 'exact')
RETURNS TABLE (dataset_id integer, partnership_id integer, source_key text, level text)
LANGUAGE sql STABLE AS $$
    SELECT d.id, d.partnership_id, d.source_key,
           CASE WHEN safermap_level_rank(l.level) > safermap_level_rank(p_cap) THEN p_cap ELSE l.level END
    FROM dataset d
    CROSS JOIN LATERAL (SELECT CASE
        WHEN d.partnership_id = p_partnership
             AND (p_role = 'admin' OR (p_agency IS NOT NULL AND d.agency_id = p_agency)) THEN 'exact'
        ELSE coalesce(
            (SELECT r.level FROM sharing_rule r
             WHERE r.dataset_id = d.id AND r.grantee_agency_id = p_agency),
            CASE WHEN d.partnership_id = p_partnership THEN coalesce(
                (SELECT r.level FROM sharing_rule r WHERE r.dataset_id = d.id AND r.grantee_role = p_role),
                d.sharing_level)
            ELSE 'none' END)
        END AS level) AS l
    WHERE d.partnership_id = p_partnership
       OR d.id IN (SELECT r.dataset_id FROM sharing_rule r
                   WHERE r.grantee_agency_id = p_agency AND r.level <> 'none')
$$;

-- The partnerships whose data a caller may see (its own, plus those granting its agency):
-- the tiles' ETags are made of these partnerships' data versions.
CREATE FUNCTION safermap_visible_partnerships(p_partnership integer, p_agency integer)
RETURNS SETOF integer LANGUAGE sql STABLE AS $$
    SELECT p_partnership
    UNION
    SELECT r.partnership_id FROM sharing_rule r WHERE r.grantee_agency_id = p_agency AND r.level <> 'none'
$$;

-- THE one place sharing is enforced. Rows of level 'aggregate' carry the anonymous point and
-- may only be counted (with suppression); they are never to be shown one by one.
CREATE FUNCTION safermap_visible_incidents(p_partnership integer, p_role text, p_agency integer,
                                           p_cap text DEFAULT 'exact')
RETURNS TABLE (id bigint, partnership_id integer, dataset_id integer, category text, month date,
               month_label text, geom geometry, location_text text, lsoa_code text, lsoa_name text,
               outcome text, external_ref text, dataset text, level text)
LANGUAGE sql STABLE AS $$
    SELECT i.id, i.partnership_id, i.dataset_id, i.category, i.month, to_char(i.month, 'YYYY-MM'),
           i.geom, i.location_text, i.lsoa_code, i.lsoa_name, i.outcome, i.external_ref,
           v.source_key, v.level
    FROM safermap_dataset_levels(p_partnership, p_role, p_agency, p_cap) AS v
    JOIN incident i ON i.dataset_id = v.dataset_id
    WHERE v.level = 'exact'
      AND NOT EXISTS (SELECT 1 FROM sensitive_category s
                      WHERE s.partnership_id = i.partnership_id AND s.category = i.category
                        AND safermap_role_rank(p_role) < safermap_role_rank(s.least_role))
    UNION ALL
    SELECT i.id, i.partnership_id, i.dataset_id, i.category, i.month, to_char(i.month, 'YYYY-MM'),
           i.geom_anon,
           CASE WHEN i.geom_anon IS NULL THEN NULL
                ELSE coalesce((SELECT a.label FROM anon_point a WHERE a.id = i.anon_point_id),
                              'Near grid cell') END,
           i.lsoa_code, i.lsoa_name, i.outcome, NULL, v.source_key, v.level
    FROM safermap_dataset_levels(p_partnership, p_role, p_agency, p_cap) AS v
    JOIN incident i ON i.dataset_id = v.dataset_id
    WHERE v.level IN ('sanitised', 'aggregate')
      AND NOT EXISTS (SELECT 1 FROM sensitive_category s
                      WHERE s.partnership_id = i.partnership_id AND s.category = i.category
                        AND safermap_role_rank(p_role) < safermap_role_rank(s.least_role))
$$;
"""

VERSIONED_TABLES = ("sharing_rule", "sensitive_category", "anon_point")


def upgrade() -> None:
    op.execute(UPGRADE)
    # Changing a rule takes effect at once: tile ETags include these tables' data versions.
    for table in VERSIONED_TABLES:
        for event, ref in (("INSERT", "NEW TABLE AS new_rows"), ("UPDATE", "NEW TABLE AS new_rows"),
                           ("DELETE", "OLD TABLE AS old_rows")):
            op.execute(
                f"CREATE TRIGGER {table}_version_{event.lower()} AFTER {event} ON {table} "
                f"REFERENCING {ref} FOR EACH STATEMENT EXECUTE FUNCTION safermap_bump_version()"
            )
    # Incidents loaded before this migration get their anonymous locations now.
    op.execute("SELECT safermap_refresh_anon_points(id) FROM partnership")


def downgrade() -> None:
    op.execute("""
        DROP FUNCTION IF EXISTS safermap_visible_incidents(integer, text, integer, text),
            safermap_visible_partnerships(integer, integer),
            safermap_dataset_levels(integer, text, integer, text),
            safermap_refresh_anon_points(integer);
        DROP TRIGGER IF EXISTS incident_anonymise ON incident;
        DROP FUNCTION IF EXISTS safermap_incident_anonymise(), safermap_anon_location(integer, geometry);
        ALTER TABLE incident DROP COLUMN IF EXISTS geom_anon, DROP COLUMN IF EXISTS anon_point_id;
        DROP TABLE IF EXISTS anon_point, sensitive_category, sharing_rule;
        DROP FUNCTION IF EXISTS safermap_role_rank(text), safermap_level_rank(text);
    """)
