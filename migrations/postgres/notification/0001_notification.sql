-- NotificationService's own data (DESIGN §9, spec §B). Times are milliseconds since the epoch
-- and ids bind as uuid here and as 16-byte blobs on SQLite: the store runs one SQL text on both.

-- One row per (device, platform): registering again replaces the token in place (same
-- push_token_id); a (platform, app_id, token) registered by another device moves to the caller.
CREATE TABLE push_tokens (
    push_token_id        uuid PRIMARY KEY,
    user_id              uuid NOT NULL,
    device_id            uuid NOT NULL,
    -- the session that registered it (SessionRevoked removes the device's tokens)
    session_id           uuid,
    -- 1 FCM, 2 APNS, 3 WEBPUSH, 4 WEBHOOK (the proto's PushPlatform numbers)
    platform             smallint NOT NULL,
    app_id               text NOT NULL DEFAULT '',
    -- the token as delivered to the provider (a Web Push subscription in canonical JSON)
    token                text NOT NULL,
    -- sha256(token): tokens may be 4096 bytes, past what a btree entry holds (2704), so
    -- uniqueness rests on the digest
    token_sha256         bytea NOT NULL,
    sandbox              boolean NOT NULL DEFAULT false,
    created_at_ms        bigint NOT NULL,
    updated_at_ms        bigint NOT NULL,
    last_delivered_at_ms bigint,
    -- the badge number last sent to this token; NULL: none yet (the pipeline resends when it
    -- differs from the real count, 0 included)
    last_badge_sent      integer,
    UNIQUE (platform, app_id, token_sha256),
    UNIQUE (device_id, platform)
);
CREATE INDEX push_tokens_user ON push_tokens (user_id, push_token_id);

-- The inbox: one entry per (user, message), written by the pipeline for each eligible
-- recipient. inbox_entry_id is a UUIDv7 and the sort key.
CREATE TABLE inbox_entries (
    inbox_entry_id      uuid PRIMARY KEY,
    user_id             uuid NOT NULL,
    -- 1 MESSAGE, 2 MENTION, 3 REPLY (the proto's InboxEntryKind numbers)
    kind                smallint NOT NULL,
    conversation_id     uuid NOT NULL,
    message_id          uuid NOT NULL,
    seq                 bigint NOT NULL,
    sender_user_id      uuid NOT NULL,
    sender_display_name text NOT NULL DEFAULT '',
    conversation_title  text NOT NULL DEFAULT '',
    -- empty when the recipient turned previews off
    preview             text NOT NULL DEFAULT '',
    created_at_ms       bigint NOT NULL,
    read                boolean NOT NULL DEFAULT false,
    UNIQUE (user_id, message_id)
);
CREATE INDEX inbox_entries_user ON inbox_entries (user_id, inbox_entry_id);
-- delete-for-everyone erases a message's entries (and their previews) for every recipient
CREATE INDEX inbox_entries_message ON inbox_entries (message_id);

-- A user's settings; no row means the defaults (previews on, quiet hours off).
CREATE TABLE notification_settings (
    user_id            uuid PRIMARY KEY,
    show_previews      boolean NOT NULL,
    quiet_enabled      boolean NOT NULL,
    -- minutes after local midnight, 0-1439; start = end means all day
    quiet_start_minute smallint NOT NULL,
    quiet_end_minute   smallint NOT NULL,
    -- IANA name; '' when none was given
    quiet_time_zone    text NOT NULL
);

-- Projections the delivery pipeline keeps from message, user and auth events (spec §B2).
-- Empty until the pipeline runs; the RPCs read notify_counts for the badge.

-- members of each conversation, with the seq at which they joined (eligibility at a seq)
CREATE TABLE notify_members (
    conversation_id uuid NOT NULL,
    user_id         uuid NOT NULL,
    joined_seq      bigint NOT NULL,
    PRIMARY KEY (conversation_id, user_id)
);
CREATE INDEX notify_members_user ON notify_members (user_id);

-- conversation kind (1 DIRECT, 2 GROUP, 3 CHANNEL) and title, for inbox entries and pushes
CREATE TABLE notify_conversations (
    conversation_id uuid PRIMARY KEY,
    kind            smallint NOT NULL,
    title           text NOT NULL DEFAULT ''
);

-- per (user, conversation): unread and mention counts, reset to the authoritative values
-- ReadMarkerMoved and MessageDeletedForMe carry, and the member's mute (muted while
-- muted_until_ms is in the future)
CREATE TABLE notify_counts (
    user_id         uuid NOT NULL,
    conversation_id uuid NOT NULL,
    unread          integer NOT NULL DEFAULT 0,
    mentions        integer NOT NULL DEFAULT 0,
    muted_until_ms  bigint,
    PRIMARY KEY (user_id, conversation_id)
);

-- blocker blocked blocked_id (a recipient who blocked the sender gets nothing)
CREATE TABLE notify_blocks (
    blocker_id uuid NOT NULL,
    blocked_id uuid NOT NULL,
    PRIMARY KEY (blocker_id, blocked_id)
);

-- display names, for "New message from Ada"
CREATE TABLE notify_names (
    user_id      uuid PRIMARY KEY,
    display_name text NOT NULL
);

-- Pushes to send, one per (message, token, kind): a redelivered event creates nothing new.
-- message_id is NULL for badge-only pushes (NULLs never collide, so those are not deduplicated).
CREATE TABLE push_jobs (
    push_job_id   uuid PRIMARY KEY,
    message_id    uuid,
    push_token_id uuid NOT NULL,
    user_id       uuid NOT NULL,
    -- what to send (alert, badge, dismiss: defined by the dispatcher)
    kind          smallint NOT NULL,
    due_at_ms     bigint NOT NULL,
    attempts      integer NOT NULL DEFAULT 0,
    -- 1 pending; the dispatcher defines the others. A token that is unregistered, replaced
    -- by another device's registration or removed loses its pending jobs in that transaction.
    state         smallint NOT NULL,
    created_at_ms bigint NOT NULL,
    expires_at_ms bigint NOT NULL,
    UNIQUE (message_id, push_token_id, kind)
);
CREATE INDEX push_jobs_due ON push_jobs (state, due_at_ms);
CREATE INDEX push_jobs_token ON push_jobs (push_token_id);
