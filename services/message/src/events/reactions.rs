//! The events of reactions: builders for their `ConversationEvent` / `UserEvent` kinds.
