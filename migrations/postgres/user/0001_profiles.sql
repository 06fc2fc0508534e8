-- UserService's tables: profiles (with privacy settings), search terms, contacts, contact
-- requests and blocks. Sort and search keys are lowercased in Rust and compared with the "C"
-- collation, so both backends order them byte-wise and identically.

CREATE TABLE profiles (
    user_id          UUID        PRIMARY KEY,
    display_name     TEXT        NOT NULL,
    -- Lowercased display name, the sort key of contact lists and search results.
    display_name_key TEXT        COLLATE "C" NOT NULL,
    username         TEXT,
    -- Lowercased username: uniqueness is case-insensitive.
    username_key     TEXT        COLLATE "C",
    about            TEXT        NOT NULL DEFAULT '',
    avatar_url       TEXT,
    avatar_mime_type TEXT,
    avatar_size      BIGINT,
    avatar_width     INTEGER,
    avatar_height    INTEGER,
    -- NULL until the registration event arrives (a profile can be created first by its owner's
    -- own call) and after deletion.
    phone_number     TEXT,
    -- Visibility enum values (1 everyone, 2 contacts, 3 nobody).
    last_seen        SMALLINT    NOT NULL DEFAULT 2,
    profile_photo    SMALLINT    NOT NULL DEFAULT 1,
    about_visibility SMALLINT    NOT NULL DEFAULT 1,
    find_by_phone    SMALLINT    NOT NULL DEFAULT 1,
    -- False while only the owner's own calls have created the row (registration not consumed).
    registered       BOOLEAN     NOT NULL DEFAULT FALSE,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL,
    -- Set when the account is deleted: the row stays as a tombstone (every other field cleared)
    -- so old messages can still name "Deleted account", and a late event cannot revive it.
    deleted_at       TIMESTAMPTZ,
    CONSTRAINT profiles_username_key UNIQUE (username_key),
    CONSTRAINT profiles_phone_number_key UNIQUE (phone_number)
);

-- Every word of a display name and the username, lowercased: prefix search is a range scan.
CREATE TABLE profile_search_terms (
    term    TEXT COLLATE "C" NOT NULL,
    user_id UUID NOT NULL REFERENCES profiles (user_id) ON DELETE CASCADE,
    PRIMARY KEY (term, user_id)
);
CREATE INDEX profile_search_terms_user ON profile_search_terms (user_id);

-- The owner's address book: one-sided.
CREATE TABLE contacts (
    owner_id   UUID        NOT NULL,
    contact_id UUID        NOT NULL,
    alias      TEXT        NOT NULL DEFAULT '',
    -- Lowercased alias ('' when none): with the contact's display_name_key, the list's order.
    alias_key  TEXT        COLLATE "C" NOT NULL DEFAULT '',
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (owner_id, contact_id)
);
CREATE INDEX contacts_contact ON contacts (contact_id);

CREATE TABLE contact_requests (
    contact_request_id UUID        PRIMARY KEY,
    sender_id          UUID        NOT NULL,
    recipient_id       UUID        NOT NULL,
    message            TEXT        NOT NULL DEFAULT '',
    -- ContactRequestState values (1 pending, 2 accepted, 3 declined, 4 cancelled). A declined
    -- request still reads as pending to its sender (declines are silent).
    state              SMALLINT    NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL,
    updated_at         TIMESTAMPTZ NOT NULL
);
-- At most one open (pending or silently declined) request per direction.
CREATE UNIQUE INDEX contact_requests_open ON contact_requests (sender_id, recipient_id)
    WHERE state IN (1, 3);
CREATE INDEX contact_requests_recipient ON contact_requests (recipient_id, contact_request_id);
CREATE INDEX contact_requests_sender ON contact_requests (sender_id, contact_request_id);

CREATE TABLE blocks (
    blocker_id UUID        NOT NULL,
    blocked_id UUID        NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (blocker_id, blocked_id)
);
CREATE INDEX blocks_blocked ON blocks (blocked_id);
