-- Reports and the moderation record (docs/lifecycle.md, "Reports"): DESIGN §6's one named
-- exception to "no trace". Each row keeps a copy of the reported message as the reporter saw it
-- (`snapshot`: the encoded echo.message.v1.Message), so it outlives a deletion for everyone, an
-- expiry or a purge of the message; no foreign key ties it to `messages` for that reason.
-- Operators read it through AdminService only. Resolved reports are erased after
-- `retention.resolved_reports` by the expiry sweep; open ones stay until resolved.
CREATE TABLE message_reports (
    report_id       UUID        PRIMARY KEY,
    conversation_id UUID        NOT NULL,
    message_id      UUID        NOT NULL,
    reporter_id     UUID        NOT NULL,
    reason          SMALLINT    NOT NULL,
    note            TEXT        NOT NULL,
    snapshot        BYTEA       NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    resolved_at     TIMESTAMPTZ,
    resolution      TEXT,
    resolved_by     TEXT,
    -- One report per reporter and message: reporting again answers the first.
    UNIQUE (message_id, reporter_id)
);
-- The queue: open reports by id (time order).
CREATE INDEX message_reports_open ON message_reports (report_id) WHERE resolved_at IS NULL;
-- The retention of resolved reports.
CREATE INDEX message_reports_resolved ON message_reports (resolved_at)
    WHERE resolved_at IS NOT NULL;
