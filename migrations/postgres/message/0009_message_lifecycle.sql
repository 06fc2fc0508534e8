-- Disappearing messages and operator retention (docs/lifecycle.md).
-- A conversation's message_ttl in whole seconds (NULL: off); each message's expires_at is fixed
-- at send from the ttl of that moment (NULL: never expires).
ALTER TABLE conversations ADD COLUMN message_ttl_seconds BIGINT;
ALTER TABLE messages ADD COLUMN expires_at TIMESTAMPTZ;
-- The sweep's two look-ups, over live messages only: due by their own time, and old by the
-- operator's retention.
CREATE INDEX messages_expiry ON messages (expires_at)
    WHERE expires_at IS NOT NULL AND deleted_at IS NULL;
CREATE INDEX messages_age ON messages (created_at) WHERE deleted_at IS NULL;
