-- The audit trail is append-only. The app's role may only INSERT and SELECT audit events (grants,
-- migration 0004); this trigger refuses UPDATE and DELETE for everyone, superusers included, as a
-- second wall should the grants ever be widened.

CREATE OR REPLACE FUNCTION safermap_audit_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit trail is append-only' USING ERRCODE = 'insufficient_privilege';
END $$;

DROP TRIGGER IF EXISTS audit_event_append_only ON audit_event;
CREATE TRIGGER audit_event_append_only BEFORE UPDATE OR DELETE ON audit_event
    FOR EACH ROW EXECUTE FUNCTION safermap_audit_is_append_only();
