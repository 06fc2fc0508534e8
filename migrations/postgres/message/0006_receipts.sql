-- Read state beside the member rows (DESIGN §6): delivery receipts per device, and an index
-- for the pinned-conversations cap.

-- The highest seq each device acknowledged with MarkDelivered (only moves forward). Others
-- see the maximum over a member's devices (ListReceipts); the owner sees each (GetReadState).
CREATE TABLE device_receipts (
    conversation_id     UUID        NOT NULL REFERENCES conversations ON DELETE CASCADE,
    user_id             UUID        NOT NULL,
    device_id           UUID        NOT NULL,
    delivered_up_to_seq BIGINT      NOT NULL,
    delivered_at        TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (conversation_id, user_id, device_id)
);

-- A user's pinned conversations, counted under their lock before another is pinned.
CREATE INDEX members_pinned ON members (user_id)
    WHERE pinned_at IS NOT NULL AND left_at_seq IS NULL;
