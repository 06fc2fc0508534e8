-- Who each message mentions (see the PostgreSQL migration of the same name).
CREATE TABLE mentions (
    message_id      TEXT    NOT NULL REFERENCES messages ON DELETE CASCADE,
    user_id         TEXT    NOT NULL,
    conversation_id TEXT    NOT NULL,
    seq             INTEGER NOT NULL,
    PRIMARY KEY (message_id, user_id)
) STRICT;
CREATE INDEX mentions_by_user ON mentions (user_id, conversation_id, seq);
