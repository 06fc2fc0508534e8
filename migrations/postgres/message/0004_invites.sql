-- Invite codes of groups and channels (JoinByInvite). The code is kept as issued (not hashed):
-- members allowed to manage invites see it again in ListInvites. Rows stay after revocation,
-- expiry or use-up, so ListInvites can show inactive invites and a join names its invite.
CREATE TABLE invites (
    invite_id       UUID        PRIMARY KEY,
    conversation_id UUID        NOT NULL REFERENCES conversations ON DELETE CASCADE,
    -- 22 URL-safe base64 characters (128 random bits).
    code            TEXT        NOT NULL UNIQUE,
    created_by      UUID        NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    -- NULL: never expires.
    expires_at      TIMESTAMPTZ,
    -- 0: unlimited.
    max_uses        INTEGER     NOT NULL DEFAULT 0,
    -- Successful joins; bumped under the conversation's row lock, so it never passes max_uses.
    use_count       INTEGER     NOT NULL DEFAULT 0,
    revoked_at      TIMESTAMPTZ
);
-- ListInvites: newest first (UUIDv7 ids are time ordered).
CREATE INDEX invites_by_conversation ON invites (conversation_id, invite_id DESC);

-- ListMembers: current members by role, then join seq.
CREATE INDEX members_by_role ON members (conversation_id, role, joined_at_seq)
    WHERE left_at_seq IS NULL;
