-- Operators (echo.admin.v1.AdminService, docs/admin.md): account suspension and the audit log
-- of every admin action. The SQLite twin of migrations/postgres/auth/0003_suspension.sql.

-- A suspended account cannot sign in; its sessions were revoked when it was suspended. NULL
-- while not suspended. Unix microseconds, like every auth time here.
ALTER TABLE accounts ADD COLUMN suspended_at INTEGER;
ALTER TABLE accounts ADD COLUMN suspension_reason TEXT;

-- Append-only: who did what, to what, when, why, and how it ended. Rows are only ever
-- inserted; the triggers below refuse every UPDATE and DELETE.
CREATE TABLE admin_audit_log (
    entry_id TEXT    PRIMARY KEY, -- UUIDv7, lowercase hyphenated: text order is time order
    at       INTEGER NOT NULL,
    operator TEXT    NOT NULL,
    action   TEXT    NOT NULL,
    target   TEXT    NOT NULL,
    reason   TEXT    NOT NULL,
    outcome  TEXT    NOT NULL,
    details  TEXT    NOT NULL -- a JSON object
) STRICT;

CREATE TRIGGER admin_audit_log_no_update BEFORE UPDATE ON admin_audit_log
BEGIN
    SELECT RAISE(ABORT, 'admin_audit_log is append-only: UPDATE refused');
END;

CREATE TRIGGER admin_audit_log_no_delete BEFORE DELETE ON admin_audit_log
BEGIN
    SELECT RAISE(ABORT, 'admin_audit_log is append-only: DELETE refused');
END;

-- INSERT OR REPLACE would remove the old row without firing the DELETE trigger (SQLite fires
-- delete triggers for REPLACE only with recursive_triggers on): an insert may never name an
-- entry that exists. (PostgreSQL's ON CONFLICT DO UPDATE fires the UPDATE trigger.)
CREATE TRIGGER admin_audit_log_no_replace BEFORE INSERT ON admin_audit_log
WHEN EXISTS (SELECT 1 FROM admin_audit_log WHERE entry_id = NEW.entry_id)
BEGIN
    SELECT RAISE(ABORT, 'admin_audit_log is append-only: REPLACE refused');
END;
