-- Read state beside the member rows (see the PostgreSQL migration of the same name).

CREATE TABLE device_receipts (
    conversation_id     TEXT    NOT NULL REFERENCES conversations ON DELETE CASCADE,
    user_id             TEXT    NOT NULL,
    device_id           TEXT    NOT NULL,
    delivered_up_to_seq INTEGER NOT NULL,
    delivered_at        INTEGER NOT NULL,
    PRIMARY KEY (conversation_id, user_id, device_id)
) STRICT, WITHOUT ROWID;

CREATE INDEX members_pinned ON members (user_id)
    WHERE pinned_at IS NOT NULL AND left_at_seq IS NULL;
