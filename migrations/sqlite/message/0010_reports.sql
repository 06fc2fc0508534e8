-- Reports and the moderation record (see the PostgreSQL migration of the same name).
CREATE TABLE message_reports (
    report_id       TEXT    PRIMARY KEY,
    conversation_id TEXT    NOT NULL,
    message_id      TEXT    NOT NULL,
    reporter_id     TEXT    NOT NULL,
    reason          INTEGER NOT NULL,
    note            TEXT    NOT NULL,
    snapshot        BLOB    NOT NULL,
    created_at      INTEGER NOT NULL, -- unix microseconds
    resolved_at     INTEGER,
    resolution      TEXT,
    resolved_by     TEXT,
    UNIQUE (message_id, reporter_id)
);
CREATE INDEX message_reports_open ON message_reports (report_id) WHERE resolved_at IS NULL;
CREATE INDEX message_reports_resolved ON message_reports (resolved_at)
    WHERE resolved_at IS NOT NULL;
