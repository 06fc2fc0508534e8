-- MessageService's core tables (DESIGN §6): conversations with their sequence, members with
-- their read state and private settings, per-user sequences, messages; and the projections of
-- other services' events it needs to authorize (who exists, who blocks whom).

-- From auth's account events: a user id is known (and whether the account was deleted).
CREATE TABLE known_users (
    user_id    UUID        PRIMARY KEY,
    deleted_at TIMESTAMPTZ
);

-- From the user service's block events.
CREATE TABLE blocks (
    blocker_id UUID NOT NULL,
    blocked_id UUID NOT NULL,
    PRIMARY KEY (blocker_id, blocked_id)
);

CREATE TABLE conversations (
    conversation_id         UUID        PRIMARY KEY,
    -- ConversationType: 1 direct, 2 group, 3 channel.
    kind                    SMALLINT    NOT NULL,
    title                   TEXT        NOT NULL DEFAULT '',
    description             TEXT        NOT NULL DEFAULT '',
    -- Encoded echo.common.v1.Media; NULL when none.
    avatar                  BYTEA,
    only_admins_edit_info   BOOLEAN     NOT NULL DEFAULT TRUE,
    only_admins_add_members BOOLEAN     NOT NULL DEFAULT TRUE,
    created_by              UUID        NOT NULL,
    created_at              TIMESTAMPTZ NOT NULL,
    -- DIRECT only: '<smaller user id>:<larger user id>', so a pair has one conversation even
    -- when both create it at once.
    direct_key              TEXT        UNIQUE,
    -- GROUP/CHANNEL only: '<creator>:<client_request_id>', making creation idempotent.
    creation_key            TEXT        UNIQUE,
    member_count            INTEGER     NOT NULL DEFAULT 0,
    -- The conversation's sequence: every durable change all members see takes last_seq + 1
    -- under this row's lock, inside its transaction (so no gap, no duplicate).
    last_seq                BIGINT      NOT NULL DEFAULT 0,
    last_activity_at        TIMESTAMPTZ NOT NULL,
    -- The newest message that is not deleted for everyone (the list's preview).
    last_message_id         UUID
);

CREATE TABLE members (
    conversation_id UUID        NOT NULL REFERENCES conversations ON DELETE CASCADE,
    user_id         UUID        NOT NULL,
    -- MemberRole: 1 owner, 2 admin, 3 member.
    role            SMALLINT    NOT NULL,
    joined_at       TIMESTAMPTZ NOT NULL,
    -- The seq of the MemberJoined event: the member sees history from here on.
    joined_at_seq   BIGINT      NOT NULL,
    added_by        UUID,
    -- The seq of the MemberLeft/MemberRemoved event; NULL while a member. Rows stay so reads
    -- know where a former member's view ends.
    left_at_seq     BIGINT,
    last_read_seq   BIGINT      NOT NULL DEFAULT 0,
    read_at         TIMESTAMPTZ,
    -- Counters kept on every change (not seq arithmetic, which deletes and non-message
    -- events break).
    unread_count    INTEGER     NOT NULL DEFAULT 0,
    mention_count   INTEGER     NOT NULL DEFAULT 0,
    mute_until      TIMESTAMPTZ,
    -- Set while pinned (the pin order).
    pinned_at       TIMESTAMPTZ,
    archived        BOOLEAN     NOT NULL DEFAULT FALSE,
    PRIMARY KEY (conversation_id, user_id)
);
CREATE INDEX members_current ON members (user_id, conversation_id) WHERE left_at_seq IS NULL;

-- Each user's sequence for the events only they (all their devices) see.
CREATE TABLE user_sequences (
    user_id  UUID   PRIMARY KEY,
    last_seq BIGINT NOT NULL
);

CREATE TABLE messages (
    message_id             UUID        PRIMARY KEY,
    conversation_id        UUID        NOT NULL REFERENCES conversations ON DELETE CASCADE,
    -- The seq of its creation: its position in the conversation.
    seq                    BIGINT      NOT NULL,
    sender_id              UUID        NOT NULL,
    sender_device_id       UUID        NOT NULL,
    client_message_id      TEXT        NOT NULL,
    -- SHA-256 of what was sent (content, reply, thread): a retry with the same key must match.
    request_hash           BYTEA       NOT NULL,
    -- Encoded echo.message.v1.MessageContent; NULL once deleted for everyone.
    content                BYTEA,
    -- The text alone, for search; NULL once deleted for everyone.
    body                   TEXT,
    reply_to_message_id    UUID,
    thread_root_message_id UUID,
    reply_count            INTEGER     NOT NULL DEFAULT 0,
    created_at             TIMESTAMPTZ NOT NULL,
    edited_at              TIMESTAMPTZ,
    edit_count             INTEGER     NOT NULL DEFAULT 0,
    deleted_at             TIMESTAMPTZ,
    CONSTRAINT messages_position UNIQUE (conversation_id, seq),
    -- Send is idempotent per (device, client_message_id), forever.
    CONSTRAINT messages_idempotency UNIQUE (sender_device_id, client_message_id)
);
CREATE INDEX messages_thread ON messages (thread_root_message_id, seq)
    WHERE thread_root_message_id IS NOT NULL;
