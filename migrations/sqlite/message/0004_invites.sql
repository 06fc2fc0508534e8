-- Invite codes of groups and channels (see the PostgreSQL migration of the same name).
CREATE TABLE invites (
    invite_id       TEXT    PRIMARY KEY,
    conversation_id TEXT    NOT NULL REFERENCES conversations ON DELETE CASCADE,
    code            TEXT    NOT NULL UNIQUE,
    created_by      TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER,
    max_uses        INTEGER NOT NULL DEFAULT 0,
    use_count       INTEGER NOT NULL DEFAULT 0,
    revoked_at      INTEGER
) STRICT;
CREATE INDEX invites_by_conversation ON invites (conversation_id, invite_id DESC);

CREATE INDEX members_by_role ON members (conversation_id, role, joined_at_seq)
    WHERE left_at_seq IS NULL;
