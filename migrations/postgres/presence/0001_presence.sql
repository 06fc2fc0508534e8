-- Presence's own data (DESIGN §9, spec §A1/§A3). Times are milliseconds since the epoch and
-- ids bind as uuid here and as 16-byte blobs on SQLite: the store runs one SQL text on both.

-- The persisted half of presence: what a flushed Redis must not forget.
CREATE TABLE presence_status (
    user_id      uuid PRIMARY KEY,
    -- 0 none, 1 away, 2 dnd, 3 invisible
    manual       smallint NOT NULL DEFAULT 0,
    clears_at_ms bigint,
    last_seen_ms bigint
);

-- Projections for visibility, fed by durable consumers of the user and message events.
CREATE TABLE presence_blocks (
    blocker_id uuid NOT NULL,
    blocked_id uuid NOT NULL,
    PRIMARY KEY (blocker_id, blocked_id)
);
CREATE INDEX presence_blocks_blocked ON presence_blocks (blocked_id, blocker_id);

-- owner has contact in their contact list
CREATE TABLE presence_contacts (
    owner_id   uuid NOT NULL,
    contact_id uuid NOT NULL,
    PRIMARY KEY (owner_id, contact_id)
);
CREATE INDEX presence_contacts_contact ON presence_contacts (contact_id, owner_id);

-- the user's last_seen setting: 1 everyone, 2 contacts (the default when absent), 3 nobody
CREATE TABLE presence_privacy (
    user_id  uuid PRIMARY KEY,
    audience smallint NOT NULL
);

-- current members of DIRECT and GROUP conversations (channels hide members from each other)
CREATE TABLE presence_members (
    conversation_id uuid NOT NULL,
    user_id         uuid NOT NULL,
    PRIMARY KEY (conversation_id, user_id)
);
CREATE INDEX presence_members_user ON presence_members (user_id, conversation_id);
