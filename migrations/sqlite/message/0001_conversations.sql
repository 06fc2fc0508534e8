-- MessageService's core tables, the SQLite twin of migrations/postgres/message. UUIDs are
-- hyphenated lowercase TEXT, times INTEGER unix microseconds, booleans INTEGER 0/1 (STRICT).
-- The single writer makes every transaction serial, which is what keeps seqs gap-free here.

CREATE TABLE known_users (
    user_id    TEXT    PRIMARY KEY,
    deleted_at INTEGER
) STRICT;

CREATE TABLE blocks (
    blocker_id TEXT NOT NULL,
    blocked_id TEXT NOT NULL,
    PRIMARY KEY (blocker_id, blocked_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE conversations (
    conversation_id         TEXT    PRIMARY KEY,
    kind                    INTEGER NOT NULL,
    title                   TEXT    NOT NULL DEFAULT '',
    description             TEXT    NOT NULL DEFAULT '',
    avatar                  BLOB,
    only_admins_edit_info   INTEGER NOT NULL DEFAULT 1,
    only_admins_add_members INTEGER NOT NULL DEFAULT 1,
    created_by              TEXT    NOT NULL,
    created_at              INTEGER NOT NULL,
    direct_key              TEXT    UNIQUE,
    creation_key            TEXT    UNIQUE,
    member_count            INTEGER NOT NULL DEFAULT 0,
    last_seq                INTEGER NOT NULL DEFAULT 0,
    last_activity_at        INTEGER NOT NULL,
    last_message_id         TEXT
) STRICT;

CREATE TABLE members (
    conversation_id TEXT    NOT NULL REFERENCES conversations ON DELETE CASCADE,
    user_id         TEXT    NOT NULL,
    role            INTEGER NOT NULL,
    joined_at       INTEGER NOT NULL,
    joined_at_seq   INTEGER NOT NULL,
    added_by        TEXT,
    left_at_seq     INTEGER,
    last_read_seq   INTEGER NOT NULL DEFAULT 0,
    read_at         INTEGER,
    unread_count    INTEGER NOT NULL DEFAULT 0,
    mention_count   INTEGER NOT NULL DEFAULT 0,
    mute_until      INTEGER,
    pinned_at       INTEGER,
    archived        INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (conversation_id, user_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX members_current ON members (user_id, conversation_id) WHERE left_at_seq IS NULL;

CREATE TABLE user_sequences (
    user_id  TEXT    PRIMARY KEY,
    last_seq INTEGER NOT NULL
) STRICT;

CREATE TABLE messages (
    message_id             TEXT    PRIMARY KEY,
    conversation_id        TEXT    NOT NULL REFERENCES conversations ON DELETE CASCADE,
    seq                    INTEGER NOT NULL,
    sender_id              TEXT    NOT NULL,
    sender_device_id       TEXT    NOT NULL,
    client_message_id      TEXT    NOT NULL,
    request_hash           BLOB    NOT NULL,
    content                BLOB,
    body                   TEXT,
    reply_to_message_id    TEXT,
    thread_root_message_id TEXT,
    reply_count            INTEGER NOT NULL DEFAULT 0,
    created_at             INTEGER NOT NULL,
    edited_at              INTEGER,
    edit_count             INTEGER NOT NULL DEFAULT 0,
    deleted_at             INTEGER,
    UNIQUE (conversation_id, seq),
    UNIQUE (sender_device_id, client_message_id) -- a violation names these columns
) STRICT;
CREATE INDEX messages_thread ON messages (thread_root_message_id, seq)
    WHERE thread_root_message_id IS NOT NULL;
