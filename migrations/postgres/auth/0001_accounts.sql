-- AuthService's tables (DESIGN §5). No secret is stored in the clear: passwords are argon2id
-- PHC strings, OTP codes HMACs under the server's key, refresh tokens SHA-256 hashes.

CREATE TABLE accounts (
    user_id       UUID        PRIMARY KEY,
    phone_number  TEXT        NOT NULL,
    -- NULL for accounts that only ever sign in by OTP.
    password_hash TEXT,
    display_name  TEXT        NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    -- Named so the store can tell a taken phone (Conflict("phone")) from any other violation.
    CONSTRAINT accounts_phone_number_key UNIQUE (phone_number)
);

-- A registration waits here until its phone is verified, so an unverified sign-up never holds
-- a number. Keyed by phone: registering again replaces the earlier attempt.
CREATE TABLE pending_registrations (
    phone_number  TEXT        PRIMARY KEY,
    password_hash TEXT        NOT NULL,
    display_name  TEXT        NOT NULL,
    -- Only for pruning abandoned registrations.
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- One code per phone and purpose: issuing a new code replaces the old one, which stops working.
-- Keyed by phone, not by account, because registration codes exist before the account does.
CREATE TABLE otp_codes (
    phone_number TEXT        NOT NULL,
    purpose      TEXT        NOT NULL CHECK (purpose IN ('register', 'login', 'reset')),
    code_hash    BYTEA       NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL,
    -- Wrong guesses against this code; the domain caps them.
    attempts     INTEGER     NOT NULL DEFAULT 0,
    created_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (phone_number, purpose)
);

CREATE TABLE sessions (
    session_id      UUID        PRIMARY KEY,
    user_id         UUID        NOT NULL REFERENCES accounts (user_id) ON DELETE CASCADE,
    -- Server-issued per sign-in (the `did` claim), so it never repeats.
    device_id       UUID        NOT NULL UNIQUE,
    device_name     TEXT        NOT NULL,
    device_platform INTEGER     NOT NULL, -- the DevicePlatform enum value
    app_version     TEXT        NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    last_active_at  TIMESTAMPTZ NOT NULL,
    last_ip         TEXT,
    -- Revoked sessions are kept, not deleted: a refresh token of a revoked session must be
    -- recognised as such (and its tokens stay until the account goes).
    revoked_at      TIMESTAMPTZ
);
-- A user's active sessions in id order: session listing pages by id; the device cap counts them.
CREATE INDEX sessions_active_by_user ON sessions (user_id, session_id) WHERE revoked_at IS NULL;
-- Every session of a user, revoked ones included: account deletion and its cascade.
CREATE INDEX sessions_by_user ON sessions (user_id);

CREATE TABLE refresh_tokens (
    token_hash BYTEA       PRIMARY KEY,
    session_id UUID        NOT NULL REFERENCES sessions (session_id) ON DELETE CASCADE,
    issued_at  TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    -- Set when exchanged for a new pair. Rotated tokens are kept: presenting one again is either
    -- a retry within the grace window or a theft, and only the row tells which.
    rotated_at TIMESTAMPTZ
);
-- The cascade from sessions, and pruning a session's tokens.
CREATE INDEX refresh_tokens_by_session ON refresh_tokens (session_id);
