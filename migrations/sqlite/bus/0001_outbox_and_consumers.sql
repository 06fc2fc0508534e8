-- The transactional outbox (DESIGN §8). In the embedded default this table IS the bus:
-- consumers follow it by id, which on SQLite's single writer is also commit order.
CREATE TABLE outbox (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id     TEXT    NOT NULL UNIQUE,
    subject      TEXT    NOT NULL,
    event_type   TEXT    NOT NULL,
    payload      BLOB    NOT NULL,
    trace_parent TEXT,
    occurred_at  INTEGER NOT NULL, -- unix microseconds
    published_at INTEGER
);
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;

CREATE TABLE bus_consumer_offsets (
    consumer    TEXT    PRIMARY KEY,
    position_tx INTEGER NOT NULL,
    position_id INTEGER NOT NULL
);

CREATE TABLE bus_processed_events (
    consumer     TEXT    NOT NULL,
    event_id     TEXT    NOT NULL,
    processed_at INTEGER NOT NULL DEFAULT (unixepoch()),
    PRIMARY KEY (consumer, event_id)
);

CREATE TABLE bus_dead_letters (
    consumer   TEXT    NOT NULL,
    event_id   TEXT    NOT NULL,
    subject    TEXT    NOT NULL,
    event_type TEXT    NOT NULL,
    payload    BLOB    NOT NULL,
    error      TEXT    NOT NULL,
    attempts   INTEGER NOT NULL,
    failed_at  INTEGER NOT NULL DEFAULT (unixepoch()),
    PRIMARY KEY (consumer, event_id)
);
