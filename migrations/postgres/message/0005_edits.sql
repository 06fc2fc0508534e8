-- Edit history (EditMessage): each edit appends the version it replaces, so a message with
-- edit_count n has versions 0..n-1 here and version n in messages.content. Delete-for-everyone
-- deletes a message's rows here together with its content (DESIGN §6: no trace left).
CREATE TABLE message_edits (
    message_id UUID        NOT NULL REFERENCES messages ON DELETE CASCADE,
    -- 0 is the message as sent, n the result of its n-th edit.
    version    INTEGER     NOT NULL,
    -- Encoded echo.message.v1.MessageContent of that version.
    content    BYTEA       NOT NULL,
    -- When that version came to be: the message's created_at for version 0, the time of the
    -- edit that produced it otherwise.
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (message_id, version)
);
