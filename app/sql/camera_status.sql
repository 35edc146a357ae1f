-- Camera status history: when each camera was operational, faulty, planned or decommissioned, so
-- "which cameras could have seen it" (app/analysis/footage.py) is answered for a past time, not now.
--
-- One row per period in camera_status_history; the open row (valid_to NULL) is the current status.
-- A new camera opens a row from its created_at; a change of status closes the open row and opens
-- the next at the transaction's time.

CREATE OR REPLACE FUNCTION safermap_camera_status_open() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO camera_status_history (camera_id, partnership_id, status, valid_from)
    VALUES (NEW.id, NEW.partnership_id, NEW.status, NEW.created_at);
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION safermap_camera_status_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    closed timestamptz;
BEGIN
    -- greatest(): a camera created with a created_at later than now still gets an ordered history.
    UPDATE camera_status_history SET valid_to = greatest(valid_from, now())
    WHERE camera_id = NEW.id AND valid_to IS NULL
    RETURNING valid_to INTO closed;
    INSERT INTO camera_status_history (camera_id, partnership_id, status, valid_from)
    VALUES (NEW.id, NEW.partnership_id, NEW.status, coalesce(closed, now()));
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS camera_status_open ON camera;
CREATE TRIGGER camera_status_open AFTER INSERT ON camera
    FOR EACH ROW EXECUTE FUNCTION safermap_camera_status_open();
DROP TRIGGER IF EXISTS camera_status_change ON camera;
CREATE TRIGGER camera_status_change AFTER UPDATE OF status ON camera
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION safermap_camera_status_change();
