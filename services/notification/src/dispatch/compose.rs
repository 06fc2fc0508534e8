//! What a push says and when a failed one is tried again, as pure functions (spec §B2–§B5).

use std::time::Duration;

use rand::Rng as _;

use crate::inbox::EntryKind;

/// `ConversationType::Direct`'s number (`notify_conversations.kind`).
const DIRECT: i16 = 1;

/// The text of one alert.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlertText {
    /// The title.
    pub title: String,
    /// The body; None when previews are hidden.
    pub body: Option<String>,
}

/// What an alert is about.
#[derive(Clone, Debug)]
pub struct About<'a> {
    /// `notify_conversations.kind`.
    pub conversation_kind: i16,
    /// The conversation's title (empty for direct conversations).
    pub conversation_title: &'a str,
    /// The sender's display name.
    pub sender_name: &'a str,
    /// The start of the text; None when the recipient hides previews.
    pub text: Option<&'a str>,
    /// Why the recipient is told.
    pub kind: EntryKind,
    /// Storm damping: alerts of this conversation went out moments ago, so this one
    /// summarises: the conversation's unread count.
    pub summary_of: Option<i64>,
}

fn sender(name: &str) -> &str {
    if name.is_empty() { "Someone" } else { name }
}

/// The title and body of an alert: a direct message is titled with its sender, a group's
/// with its title and the body names the sender; hidden previews say only who wrote.
pub fn alert_text(about: &About<'_>) -> AlertText {
    let who = sender(about.sender_name);
    let direct = about.conversation_kind == DIRECT || about.conversation_title.is_empty();
    let title = if direct {
        who.to_owned()
    } else {
        about.conversation_title.to_owned()
    };
    let Some(text) = about.text else {
        let title = match about.kind {
            EntryKind::Mention => format!("{who} mentioned you"),
            EntryKind::Reply => format!("{who} replied to you"),
            EntryKind::Message => format!("New message from {who}"),
        };
        return AlertText { title, body: None };
    };
    if let Some(unread) = about.summary_of.filter(|n| *n > 1) {
        return AlertText {
            title,
            body: Some(format!("{unread} new messages")),
        };
    }
    let body = if direct {
        text.to_owned()
    } else {
        format!("{who}: {text}")
    };
    AlertText {
        title,
        body: Some(body),
    }
}

/// The first retry waits up to this long (full jitter), doubling per attempt.
const BACKOFF_BASE: Duration = Duration::from_secs(1);
/// No retry waits longer than this (before `Retry-After`, which may ask for more).
const BACKOFF_CAP: Duration = Duration::from_secs(60);

/// How long to wait before attempt `failed + 1` after `failed` transient failures: full
/// jitter (a uniform draw in 0..=min(cap, base·2^failed)), never less than the provider's
/// `Retry-After`.
pub fn backoff(failed: u32, retry_after: Option<Duration>) -> Duration {
    let ceiling = BACKOFF_BASE
        .saturating_mul(1u32 << failed.min(16))
        .min(BACKOFF_CAP);
    let drawn = Duration::from_millis(
        rand::rng().random_range(0..=u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX)),
    );
    drawn.max(retry_after.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn about<'a>(kind: i16, title: &'a str, text: Option<&'a str>) -> About<'a> {
        About {
            conversation_kind: kind,
            conversation_title: title,
            sender_name: "Ada",
            text,
            kind: EntryKind::Message,
            summary_of: None,
        }
    }

    #[test]
    fn direct_group_hidden_and_summarised() {
        let direct = alert_text(&about(DIRECT, "", Some("hi")));
        assert_eq!(direct.title, "Ada");
        assert_eq!(direct.body.as_deref(), Some("hi"));
        let group = alert_text(&about(2, "Climbing", Some("rope?")));
        assert_eq!(group.title, "Climbing");
        assert_eq!(group.body.as_deref(), Some("Ada: rope?"));
        let hidden = alert_text(&about(2, "Climbing", None));
        assert_eq!(hidden.title, "New message from Ada");
        assert_eq!(hidden.body, None);
        let mention = alert_text(&About {
            kind: EntryKind::Mention,
            ..about(2, "Climbing", None)
        });
        assert_eq!(mention.title, "Ada mentioned you");
        let storm = alert_text(&About {
            summary_of: Some(3),
            ..about(2, "Climbing", Some("third"))
        });
        assert_eq!(storm.body.as_deref(), Some("3 new messages"));
    }

    #[test]
    fn backoff_is_full_jitter_under_the_cap_and_honours_retry_after() {
        for failed in 0..20 {
            let ceiling = BACKOFF_BASE
                .saturating_mul(1u32 << failed.min(16))
                .min(BACKOFF_CAP);
            for _ in 0..50 {
                assert!(backoff(failed, None) <= ceiling, "attempt {failed}");
            }
        }
        let after = Duration::from_secs(120);
        assert!(backoff(0, Some(after)) >= after);
        // Jitter: the draws are not all equal.
        let draws: std::collections::HashSet<_> = (0..50).map(|_| backoff(5, None)).collect();
        assert!(draws.len() > 1);
    }
}
