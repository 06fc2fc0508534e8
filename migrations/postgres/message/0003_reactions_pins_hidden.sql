-- What hangs off a message besides its edits: reactions, pins, and deletion for one user.
-- Delete-for-everyone removes the message's reactions and pin (rows gone); a deletion for one
-- user is a row here, read by every read of that user.

-- One reaction per user per emoji.
CREATE TABLE reactions (
    message_id      UUID        NOT NULL REFERENCES messages ON DELETE CASCADE,
    user_id         UUID        NOT NULL,
    emoji           TEXT        NOT NULL,
    conversation_id UUID        NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (message_id, emoji, user_id)
);
CREATE INDEX reactions_by_user ON reactions (message_id, user_id);

-- A message is pinned at most once in its conversation.
CREATE TABLE pins (
    message_id      UUID        PRIMARY KEY REFERENCES messages ON DELETE CASCADE,
    conversation_id UUID        NOT NULL,
    pinned_by       UUID        NOT NULL,
    pinned_at       TIMESTAMPTZ NOT NULL
);
CREATE INDEX pins_by_conversation ON pins (conversation_id, pinned_at);

-- Messages a user deleted for themselves (DeleteMessage FOR_ME).
CREATE TABLE hidden_messages (
    user_id         UUID        NOT NULL,
    message_id      UUID        NOT NULL REFERENCES messages ON DELETE CASCADE,
    conversation_id UUID        NOT NULL,
    seq             BIGINT      NOT NULL,
    hidden_at       TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, message_id)
);
CREATE INDEX hidden_by_conversation ON hidden_messages (user_id, conversation_id, seq);
