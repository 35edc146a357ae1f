-- Camera revisions: every version a camera has had, so that a change based on version N can be
-- merged three ways (the caller's values, the camera now, and revision N: app/api/camera_merge.py),
-- and so that a camera deleted meanwhile is known as deleted (410), never recreated.
--
-- One row per (camera, version), written by these triggers on whatever path changes a camera (the
-- API, the register and OpenStreetMap imports). An update that keeps the version (an import that
-- refreshes a column) rewrites that version's row. Deleting a camera adds a last row, deleted, one
-- version on. No foreign key to camera: the history outlives the camera. `changed_by` is the
-- transaction's `safermap.actor` setting (the API sets it to the caller's name), NULL otherwise.

-- The properties of a revision: the camera's columns but its identity, place and bookkeeping.
CREATE OR REPLACE FUNCTION safermap_camera_revision_properties(c camera) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT to_jsonb(c) - ARRAY['id', 'partnership_id', 'geom', 'version', 'created_at', 'updated_at']
$$;

CREATE OR REPLACE FUNCTION safermap_camera_revision() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    actor text := nullif(current_setting('safermap.actor', true), '');
BEGIN
    IF TG_OP = 'DELETE' THEN
        -- A partnership being deleted takes its cameras and their history with it.
        IF NOT EXISTS (SELECT 1 FROM partnership WHERE id = OLD.partnership_id) THEN
            RETURN NULL;
        END IF;
        INSERT INTO camera_revision (camera_id, version, partnership_id, properties, geom, deleted, changed_by)
        VALUES (OLD.id, OLD.version + 1, OLD.partnership_id, safermap_camera_revision_properties(OLD),
                OLD.geom, true, actor)
        ON CONFLICT (camera_id, version) DO UPDATE
            SET properties = EXCLUDED.properties, geom = EXCLUDED.geom, deleted = true,
                changed_by = EXCLUDED.changed_by, changed_at = EXCLUDED.changed_at;
        RETURN NULL;
    END IF;
    INSERT INTO camera_revision (camera_id, version, partnership_id, properties, geom, changed_by)
    VALUES (NEW.id, NEW.version, NEW.partnership_id, safermap_camera_revision_properties(NEW), NEW.geom, actor)
    ON CONFLICT (camera_id, version) DO UPDATE
        SET properties = EXCLUDED.properties, geom = EXCLUDED.geom, deleted = false,
            changed_by = EXCLUDED.changed_by, changed_at = EXCLUDED.changed_at;
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS camera_revision_write ON camera;
CREATE TRIGGER camera_revision_write AFTER INSERT OR UPDATE OR DELETE ON camera
    FOR EACH ROW EXECUTE FUNCTION safermap_camera_revision();
