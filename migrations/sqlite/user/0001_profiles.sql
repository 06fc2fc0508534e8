-- UserService's tables, the SQLite twin of migrations/postgres/user. UUIDs are hyphenated
-- lowercase TEXT, times INTEGER unix microseconds, booleans INTEGER 0/1 (STRICT tables). Sort
-- and search keys are lowercased in Rust; TEXT compares byte-wise (BINARY), like "C" there.

CREATE TABLE profiles (
    user_id          TEXT    PRIMARY KEY,
    display_name     TEXT    NOT NULL,
    display_name_key TEXT    NOT NULL,
    username         TEXT,
    username_key     TEXT    UNIQUE, -- a violation reads "profiles.username_key"
    about            TEXT    NOT NULL DEFAULT '',
    avatar_url       TEXT,
    avatar_mime_type TEXT,
    avatar_size      INTEGER,
    avatar_width     INTEGER,
    avatar_height    INTEGER,
    phone_number     TEXT    UNIQUE,
    last_seen        INTEGER NOT NULL DEFAULT 2,
    profile_photo    INTEGER NOT NULL DEFAULT 1,
    about_visibility INTEGER NOT NULL DEFAULT 1,
    find_by_phone    INTEGER NOT NULL DEFAULT 1,
    registered       INTEGER NOT NULL DEFAULT 0,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    deleted_at       INTEGER
) STRICT;

CREATE TABLE profile_search_terms (
    term    TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES profiles (user_id) ON DELETE CASCADE,
    PRIMARY KEY (term, user_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX profile_search_terms_user ON profile_search_terms (user_id);

CREATE TABLE contacts (
    owner_id   TEXT    NOT NULL,
    contact_id TEXT    NOT NULL,
    alias      TEXT    NOT NULL DEFAULT '',
    alias_key  TEXT    NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    PRIMARY KEY (owner_id, contact_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX contacts_contact ON contacts (contact_id);

CREATE TABLE contact_requests (
    contact_request_id TEXT    PRIMARY KEY,
    sender_id          TEXT    NOT NULL,
    recipient_id       TEXT    NOT NULL,
    message            TEXT    NOT NULL DEFAULT '',
    state              INTEGER NOT NULL,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
) STRICT;
CREATE UNIQUE INDEX contact_requests_open ON contact_requests (sender_id, recipient_id)
    WHERE state IN (1, 3);
CREATE INDEX contact_requests_recipient ON contact_requests (recipient_id, contact_request_id);
CREATE INDEX contact_requests_sender ON contact_requests (sender_id, contact_request_id);

CREATE TABLE blocks (
    blocker_id TEXT    NOT NULL,
    blocked_id TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (blocker_id, blocked_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX blocks_blocked ON blocks (blocked_id);
