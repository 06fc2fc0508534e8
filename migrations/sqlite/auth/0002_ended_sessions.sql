-- The sessions that ended with their account (DeleteAccount deletes them, so `sessions` no
-- longer shows them revoked). Their revocation must still be announced again when the cache
-- loses its copy (a Redis restart) while their access tokens can live: kept for a day, far
-- beyond any access-token lifetime. Ids and times only: nothing about the person. The SQLite
-- twin of migrations/postgres/auth/0002 (TEXT ids, INTEGER unix microseconds).
CREATE TABLE ended_sessions (
    session_id TEXT    PRIMARY KEY,
    revoked_at INTEGER NOT NULL
) STRICT;
-- revoked_since, and pruning.
CREATE INDEX ended_sessions_by_time ON ended_sessions (revoked_at);
-- revoked_since over the sessions still kept (most are never revoked: a partial index).
CREATE INDEX sessions_revoked_at ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;
