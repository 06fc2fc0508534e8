-- Operators (echo.admin.v1.AdminService, docs/admin.md): account suspension and the audit log
-- of every admin action.

-- A suspended account cannot sign in; its sessions were revoked when it was suspended. NULL
-- while not suspended.
ALTER TABLE accounts ADD COLUMN suspended_at TIMESTAMPTZ;
ALTER TABLE accounts ADD COLUMN suspension_reason TEXT;

-- Append-only: who did what, to what, when, why, and how it ended. Rows are only ever
-- inserted; the trigger below refuses every UPDATE, DELETE and TRUNCATE, whoever runs them.
-- Kept when the account it names is deleted (`target` is text, not a foreign key).
CREATE TABLE admin_audit_log (
    entry_id UUID        PRIMARY KEY, -- UUIDv7: newest first is id order, descending
    at       TIMESTAMPTZ NOT NULL,
    operator TEXT        NOT NULL,
    action   TEXT        NOT NULL,
    target   TEXT        NOT NULL,
    reason   TEXT        NOT NULL,
    outcome  TEXT        NOT NULL,
    -- A JSON object, as text (the same on both backends).
    details  TEXT        NOT NULL
);

CREATE FUNCTION admin_audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'admin_audit_log is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER admin_audit_log_no_update_or_delete
    BEFORE UPDATE OR DELETE ON admin_audit_log
    FOR EACH ROW EXECUTE FUNCTION admin_audit_log_append_only();
CREATE TRIGGER admin_audit_log_no_truncate
    BEFORE TRUNCATE ON admin_audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION admin_audit_log_append_only();
