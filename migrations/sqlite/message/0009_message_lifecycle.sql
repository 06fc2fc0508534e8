-- Disappearing messages and operator retention (see the PostgreSQL migration of the same name).
ALTER TABLE conversations ADD COLUMN message_ttl_seconds INTEGER;
ALTER TABLE messages ADD COLUMN expires_at INTEGER; -- unix microseconds
CREATE INDEX messages_expiry ON messages (expires_at)
    WHERE expires_at IS NOT NULL AND deleted_at IS NULL;
CREATE INDEX messages_age ON messages (created_at) WHERE deleted_at IS NULL;
