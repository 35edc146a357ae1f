-- Data versions: a per-partnership, per-table counter bumped by every statement that changes a
-- versioned table, so tile ETags and caches keyed on it are right in every worker without any
-- shared state in the app.
--
-- One new version per partnership and statement (DISTINCT before nextval(): rows each carrying
-- their own nextval() would propose one key twice and fail the upsert). A partnership being
-- deleted takes its rows with it and gets no bump: its row is already gone within the statement.

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

-- The versioned tables: each gets <table>_version_insert, _update and _delete, once per statement.
-- A table a later migration makes is skipped until then (a fresh database replays this file at 0014).
DO $$
DECLARE
    t text;
    ev text;
BEGIN
    FOREACH t IN ARRAY ARRAY['agency', 'camera', 'camera_coverage', 'dataset', 'incident', 'street', 'building',
                             'sharing_rule', 'sensitive_category', 'anon_point', 'camera_coverage_band',
                             'coverage_union', 'route_edge', 'park', 'street_lamp', 'route_published'] LOOP
        CONTINUE WHEN to_regclass(t) IS NULL;
        FOREACH ev IN ARRAY ARRAY['insert', 'update', 'delete'] LOOP
            EXECUTE format('DROP TRIGGER IF EXISTS %I ON %I', t || '_version_' || ev, t);
            EXECUTE format('CREATE TRIGGER %I AFTER %s ON %I REFERENCING %s FOR EACH STATEMENT '
                           'EXECUTE FUNCTION safermap_bump_version()',
                           t || '_version_' || ev, upper(ev), t,
                           CASE ev WHEN 'delete' THEN 'OLD TABLE AS old_rows' ELSE 'NEW TABLE AS new_rows' END);
        END LOOP;
    END LOOP;
END $$;
