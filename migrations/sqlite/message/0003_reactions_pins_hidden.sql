-- Reactions, pins, deletion for one user (see the PostgreSQL migration of the same name).

CREATE TABLE reactions (
    message_id      TEXT    NOT NULL REFERENCES messages ON DELETE CASCADE,
    user_id         TEXT    NOT NULL,
    emoji           TEXT    NOT NULL,
    conversation_id TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (message_id, emoji, user_id)
) STRICT;
CREATE INDEX reactions_by_user ON reactions (message_id, user_id);

CREATE TABLE pins (
    message_id      TEXT    PRIMARY KEY REFERENCES messages ON DELETE CASCADE,
    conversation_id TEXT    NOT NULL,
    pinned_by       TEXT    NOT NULL,
    pinned_at       INTEGER NOT NULL
) STRICT;
CREATE INDEX pins_by_conversation ON pins (conversation_id, pinned_at);

CREATE TABLE hidden_messages (
    user_id         TEXT    NOT NULL,
    message_id      TEXT    NOT NULL REFERENCES messages ON DELETE CASCADE,
    conversation_id TEXT    NOT NULL,
    seq             INTEGER NOT NULL,
    hidden_at       INTEGER NOT NULL,
    PRIMARY KEY (user_id, message_id)
) STRICT;
CREATE INDEX hidden_by_conversation ON hidden_messages (user_id, conversation_id, seq);
