-- AuthService's tables (DESIGN §5), the SQLite twin of migrations/postgres/auth. UUIDs are
-- hyphenated lowercase TEXT (so text order is UUID order, for paging by id); times are INTEGER
-- unix microseconds (PostgreSQL's precision). STRICT makes a wrongly typed bind (a UUID bound
-- as a BLOB, a time as TEXT) an error instead of a row that silently never matches.
-- No secret is stored in the clear: passwords are argon2id PHC strings, OTP codes HMACs,
-- refresh tokens SHA-256 hashes.

CREATE TABLE accounts (
    user_id       TEXT    PRIMARY KEY,
    phone_number  TEXT    NOT NULL UNIQUE, -- a violation reads "accounts.phone_number"
    -- NULL for accounts that only ever sign in by OTP.
    password_hash TEXT,
    display_name  TEXT    NOT NULL,
    created_at    INTEGER NOT NULL
) STRICT;

-- A registration waits here until its phone is verified, so an unverified sign-up never holds
-- a number. Keyed by phone: registering again replaces the earlier attempt.
CREATE TABLE pending_registrations (
    phone_number  TEXT    PRIMARY KEY,
    password_hash TEXT    NOT NULL,
    display_name  TEXT    NOT NULL,
    -- Only for pruning abandoned registrations.
    created_at    INTEGER NOT NULL
) STRICT;

-- One code per phone and purpose: issuing a new code replaces the old one, which stops working.
-- Keyed by phone, not by account, because registration codes exist before the account does.
CREATE TABLE otp_codes (
    phone_number TEXT    NOT NULL,
    purpose      TEXT    NOT NULL CHECK (purpose IN ('register', 'login', 'reset')),
    code_hash    BLOB    NOT NULL,
    expires_at   INTEGER NOT NULL,
    -- Wrong guesses against this code; the domain caps them.
    attempts     INTEGER NOT NULL DEFAULT 0,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (phone_number, purpose)
) STRICT;

CREATE TABLE sessions (
    session_id      TEXT    PRIMARY KEY,
    user_id         TEXT    NOT NULL REFERENCES accounts (user_id) ON DELETE CASCADE,
    -- Server-issued per sign-in (the `did` claim), so it never repeats.
    device_id       TEXT    NOT NULL UNIQUE,
    device_name     TEXT    NOT NULL,
    device_platform INTEGER NOT NULL, -- the DevicePlatform enum value
    app_version     TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    last_active_at  INTEGER NOT NULL,
    last_ip         TEXT,
    -- Revoked sessions are kept, not deleted: a refresh token of a revoked session must be
    -- recognised as such (and its tokens stay until the account goes).
    revoked_at      INTEGER
) STRICT;
-- A user's active sessions in id order: session listing pages by id; the device cap counts them.
CREATE INDEX sessions_active_by_user ON sessions (user_id, session_id) WHERE revoked_at IS NULL;
-- Every session of a user, revoked ones included: account deletion and its cascade.
CREATE INDEX sessions_by_user ON sessions (user_id);

CREATE TABLE refresh_tokens (
    token_hash BLOB    PRIMARY KEY,
    session_id TEXT    NOT NULL REFERENCES sessions (session_id) ON DELETE CASCADE,
    issued_at  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    -- Set when exchanged for a new pair. Rotated tokens are kept: presenting one again is either
    -- a retry within the grace window or a theft, and only the row tells which.
    rotated_at INTEGER
) STRICT;
-- The cascade from sessions, and pruning a session's tokens.
CREATE INDEX refresh_tokens_by_session ON refresh_tokens (session_id);
