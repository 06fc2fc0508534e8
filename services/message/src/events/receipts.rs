//! The events of receipts: builders for their `ConversationEvent` / `UserEvent` kinds.
