-- The highest seq each device acknowledged in a conversation (MarkDelivered), from the
-- ephemeral `echo.live.receipt.*` updates (DIRECT and GROUP conversations of at most
-- `live.receipt_max_members`). An alert is not pushed to a device that already has the
-- message, and a recheck skips the push when an ONLINE device has it (spec §B2). An update
-- lost on the way only costs a push that could have been skipped.
CREATE TABLE notify_device_receipts (
    user_id             BLOB NOT NULL,
    conversation_id     BLOB NOT NULL,
    device_id           BLOB NOT NULL,
    delivered_up_to_seq INTEGER NOT NULL,
    updated_at_ms       INTEGER NOT NULL,
    PRIMARY KEY (user_id, conversation_id, device_id)
);
CREATE INDEX notify_device_receipts_updated ON notify_device_receipts (updated_at_ms);
