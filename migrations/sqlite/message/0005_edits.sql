-- Edit history (see the PostgreSQL migration of the same name).
CREATE TABLE message_edits (
    message_id TEXT    NOT NULL REFERENCES messages ON DELETE CASCADE,
    version    INTEGER NOT NULL,
    content    BLOB    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (message_id, version)
) STRICT;
