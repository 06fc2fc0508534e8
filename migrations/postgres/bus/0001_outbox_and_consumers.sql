-- The transactional outbox (DESIGN §8): an event row commits with the data it describes.
CREATE TABLE outbox (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id     UUID        NOT NULL UNIQUE,
    subject      TEXT        NOT NULL,
    event_type   TEXT        NOT NULL,
    payload      BYTEA       NOT NULL,
    trace_parent TEXT,
    occurred_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- The writing transaction: readers that follow the outbox by position read only rows below
    -- pg_snapshot_xmin, where no transaction can still commit (ids alone are not commit-safe).
    tx_id        XID8        NOT NULL DEFAULT pg_current_xact_id(),
    published_at TIMESTAMPTZ
);
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;
CREATE INDEX outbox_commit_order ON outbox (tx_id, id);

-- Where each embedded-bus consumer is in each source outbox (updated with its effect).
CREATE TABLE bus_consumer_offsets (
    consumer    TEXT   PRIMARY KEY,
    position_tx BIGINT NOT NULL,
    position_id BIGINT NOT NULL
);

-- Idempotency: a consumer records each event id in the same transaction as its effect.
CREATE TABLE bus_processed_events (
    consumer     TEXT        NOT NULL,
    event_id     UUID        NOT NULL,
    processed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);

-- The parking lot: events a consumer gave up on after its retries.
CREATE TABLE bus_dead_letters (
    consumer    TEXT        NOT NULL,
    event_id    UUID        NOT NULL,
    subject     TEXT        NOT NULL,
    event_type  TEXT        NOT NULL,
    payload     BYTEA       NOT NULL,
    error       TEXT        NOT NULL,
    attempts    INTEGER     NOT NULL,
    failed_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
