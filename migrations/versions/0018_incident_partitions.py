"""Incidents partitioned by data set and month, so an import replaces a force-month in one switch.

incident becomes PARTITION BY RANGE (dataset_id, month): one partition per data set-month
(incident_p_<dataset>_<yyyymm>) and a DEFAULT partition (incident_p_default) for plain INSERTs of a
month no import has loaded. The police.uk import loads a month into a table of its own with no index
and no trigger, builds its indexes, and attaches it in place of the old month in one short
transaction (app/sql/incident_partitions.sql, app/ingest/police_uk.py).

A key on a partitioned table must hold the partition key: the primary key becomes
(id, dataset_id, month); ids still come from incident_id_seq and stay unique.

Existing rows are kept: each data set-month present gets its partition and the rows are copied.
The layer view, grants, indexes and the statement triggers are made again on the new table (the
triggers from their definitions on the old one: triggers added later by other revisions follow).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-03
"""
from alembic import op

from app import sql

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

LOADS_SQL = {"incident_partitions": "1ae19b94834bef68"}

COLUMNS = """
    id             bigint NOT NULL DEFAULT nextval('incident_id_seq'::regclass),
    partnership_id integer NOT NULL,
    dataset_id     integer NOT NULL,
    import_run_id  integer,
    external_ref   text,
    category       text NOT NULL,
    month          date NOT NULL,
    occurred_at    timestamptz,
    geom           geometry(Point, 4326),
    location_text  text,
    lsoa_code      text,
    lsoa_name      text,
    outcome        text,
    context        text,
    geom_anon      geometry(Point, 4326),
    anon_point_id  bigint
"""
COLUMN_NAMES = ("id, partnership_id, dataset_id, import_run_id, external_ref, category, month, occurred_at, geom, "
                "location_text, lsoa_code, lsoa_name, outcome, context, geom_anon, anon_point_id")
INDEXES = """
    CREATE INDEX incident_geom_idx ON incident USING gist (geom);
    CREATE INDEX incident_geom_anon_idx ON incident USING gist (geom_anon);
    CREATE INDEX incident_dataset_month_idx ON incident (dataset_id, month);
    CREATE INDEX incident_partnership_month_idx ON incident (partnership_id, month);
"""
LAYER_VIEW = """
    CREATE VIEW layer_incidents AS
    SELECT i.id, i.partnership_id, i.geom, i.category, i.month, to_char(i.month, 'YYYY-MM') AS month_label,
           i.location_text, i.lsoa_code, i.lsoa_name, i.outcome, d.source_key AS dataset, i.dataset_id
    FROM incident i JOIN dataset d ON d.id = i.dataset_id;
"""
# Set the old table aside under `old`, freeing every name the new one takes; remember its triggers.
SET_ASIDE = """
    DROP VIEW layer_incidents;
    DROP TABLE IF EXISTS incident_triggers;
    CREATE TEMP TABLE incident_triggers ON COMMIT DROP AS
        SELECT pg_get_triggerdef(oid) AS def FROM pg_trigger WHERE tgrelid = 'incident'::regclass AND NOT tgisinternal;
    ALTER TABLE incident RENAME TO {old};
    ALTER TABLE {old} RENAME CONSTRAINT incident_pkey TO {old}_pkey;
    ALTER INDEX incident_geom_idx RENAME TO {old}_geom_idx;
    ALTER INDEX incident_geom_anon_idx RENAME TO {old}_geom_anon_idx;
    ALTER INDEX incident_dataset_month_idx RENAME TO {old}_dataset_month_idx;
    ALTER INDEX incident_partnership_month_idx RENAME TO {old}_partnership_month_idx;
    ALTER SEQUENCE incident_id_seq OWNED BY NONE;
"""
# Copy the rows over, drop the old table, give the new one what the old one had.
FINISH = f"""
    INSERT INTO incident ({COLUMN_NAMES}) SELECT {COLUMN_NAMES} FROM {{old}};
    DROP TABLE {{old}};
    ALTER SEQUENCE incident_id_seq OWNED BY incident.id;
    {INDEXES}
    {LAYER_VIEW}
    DO $$
    DECLARE r record;
    BEGIN
        FOR r IN SELECT def FROM incident_triggers LOOP
            EXECUTE r.def;  -- read before the rename: 'ON public.incident'
        END LOOP;
        IF to_regrole('safermap_app') IS NOT NULL THEN
            GRANT SELECT, INSERT, UPDATE, DELETE ON incident, layer_incidents TO safermap_app;
        END IF;
    END $$;
    DROP TABLE incident_triggers;
"""

PARTITIONED = """
    CREATE TABLE incident ({columns}, CONSTRAINT incident_pkey PRIMARY KEY (id, dataset_id, month))
        PARTITION BY RANGE (dataset_id, month);
    CREATE TABLE incident_p_default PARTITION OF incident DEFAULT;
    DO $$
    DECLARE r record;
    BEGIN
        FOR r IN SELECT DISTINCT dataset_id, date_trunc('month', month)::date AS m FROM incident_unpartitioned LOOP
            EXECUTE format('CREATE TABLE %I PARTITION OF incident FOR VALUES FROM (%s, %L) TO (%s, %L)',
                           format('incident_p_%s_%s', r.dataset_id, to_char(r.m, 'YYYYMM')),
                           r.dataset_id, r.m, r.dataset_id, (r.m + interval '1 month')::date);
        END LOOP;
    END $$;
"""
PLAIN = "CREATE TABLE incident ({columns}, CONSTRAINT incident_pkey PRIMARY KEY (id));"
FUNCTIONS = ("safermap_incident_month_swap(integer, integer, integer[], date[])",
             "safermap_incident_load_index(integer, integer, date)",
             "safermap_incident_load_table(integer, integer, date)",
             "safermap_incident_load_cleanup()",
             "safermap_incident_load_name(integer, integer, date)",
             "safermap_incident_partition_name(integer, date)")


def upgrade() -> None:
    old = "incident_unpartitioned"
    op.execute(SET_ASIDE.format(old=old))
    op.execute(PARTITIONED.format(columns=COLUMNS))
    op.execute(FINISH.format(old=old))
    sql.apply(op.get_bind(), *LOADS_SQL)


def downgrade() -> None:
    for function in FUNCTIONS:
        op.execute(f"DROP FUNCTION IF EXISTS {function}")
    # Load tables an import left unattached (none unless one committed half-way).
    op.execute("""
        DO $$
        DECLARE r record;
        BEGIN
            FOR r IN SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace
                     AND relkind = 'r' AND relname LIKE 'incident\\_load\\_%' AND NOT relispartition LOOP
                EXECUTE format('DROP TABLE %I', r.relname);
            END LOOP;
        END $$;
    """)
    old = "incident_partitioned"
    op.execute(SET_ASIDE.format(old=old))
    op.execute(PLAIN.format(columns=COLUMNS))
    op.execute(FINISH.format(old=old))  # dropping the partitioned table drops its partitions
