//! The events of edits: builders for their `ConversationEvent` / `UserEvent` kinds.
