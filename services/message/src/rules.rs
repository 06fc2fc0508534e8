//! MessageService's field rules and page sizes: what a valid message, title and key are.

use echo_proto::echo::common::v1::Media;
use echo_proto::echo::message::v1::{Location, MessageContent};
use echo_runtime::{Check, PageSize};
use uuid::Uuid;

/// Longest message text, in characters (Unicode scalar values).
pub const MAX_TEXT: usize = 4096;
/// Most mentions in one message.
pub const MAX_MENTIONS: usize = 50;
/// Most attachments in one message.
pub const MAX_ATTACHMENTS: usize = 10;
/// Longest group or channel title, in characters.
pub const MAX_TITLE: usize = 128;
/// Longest description, in characters.
pub const MAX_DESCRIPTION: usize = 2048;
/// Most members a group or channel may be created with (more join later by invite).
pub const MAX_INITIAL_MEMBERS: usize = 1000;
/// Longest idempotency key (`client_message_id`, `client_request_id`), in bytes.
pub const MAX_CLIENT_KEY: usize = 64;
/// Largest attachment the metadata may claim (4 GiB).
pub const MAX_ATTACHMENT_BYTES: i64 = 4 << 30;

/// Conversation lists.
pub const CONVERSATION_PAGE: PageSize = PageSize {
    default: 50,
    max: 200,
};
/// Message history pages.
pub const MESSAGE_PAGE: PageSize = PageSize {
    default: 50,
    max: 200,
};

/// Checks an idempotency key: 1-64 printable ASCII characters.
pub fn client_key(check: &mut Check, field: &str, input: &str) -> String {
    if input.is_empty() {
        check.push(
            field,
            "is required (a fresh UUID per new item, reused on retries)",
        );
    } else if input.len() > MAX_CLIENT_KEY || !input.bytes().all(|b| b.is_ascii_graphic()) {
        check.push(
            field,
            format!("must be 1-{MAX_CLIENT_KEY} printable ASCII characters"),
        );
    }
    input.to_owned()
}

/// Checks a message's content under `field`; returns the distinct mentioned users.
pub fn content(check: &mut Check, field: &str, content: &MessageContent) -> Vec<Uuid> {
    let text = &content.text;
    if text.chars().count() > MAX_TEXT {
        check.push(
            format!("{field}.text"),
            format!("must be at most {MAX_TEXT} characters"),
        );
    }
    if text.trim().is_empty() && content.attachments.is_empty() && content.location.is_none() {
        check.push(field, "needs text, an attachment or a location");
    }
    let utf16_len = text.encode_utf16().count() as i64;
    if content.mentions.len() > MAX_MENTIONS {
        check.push(
            format!("{field}.mentions"),
            format!("at most {MAX_MENTIONS}"),
        );
    }
    let mut mentioned = Vec::new();
    for (i, mention) in content.mentions.iter().enumerate() {
        let at = format!("{field}.mentions[{i}]");
        if let Some(user) = check.id(&format!("{at}.user_id"), &mention.user_id)
            && !mentioned.contains(&user)
        {
            mentioned.push(user);
        }
        let (offset, length) = (i64::from(mention.offset), i64::from(mention.length));
        if offset < 0 || length < 1 || offset + length > utf16_len {
            check.push(
                at,
                format!("offset/length must lie within the text ({utf16_len} UTF-16 units)"),
            );
        }
    }
    if content.attachments.len() > MAX_ATTACHMENTS {
        check.push(
            format!("{field}.attachments"),
            format!("at most {MAX_ATTACHMENTS}"),
        );
    }
    for (i, media) in content.attachments.iter().enumerate() {
        attachment(check, &format!("{field}.attachments[{i}]"), media);
    }
    if let Some(location) = &content.location {
        self::location(check, &format!("{field}.location"), location);
    }
    mentioned
}

/// Checks media metadata (attachments, avatars) under `field`.
pub fn attachment(check: &mut Check, field: &str, media: &Media) {
    let url = media.url.trim();
    if !(url.starts_with("https://") || url.starts_with("http://"))
        || url.len() > 2048
        || url.chars().any(char::is_whitespace)
    {
        check.push(
            format!("{field}.url"),
            "must be an http(s) URL of at most 2048 bytes",
        );
    }
    if !media.mime_type.contains('/') || media.mime_type.len() > 100 {
        check.push(
            format!("{field}.mime_type"),
            "must be a MIME type, e.g. image/jpeg",
        );
    }
    if !(0..=MAX_ATTACHMENT_BYTES).contains(&media.size_bytes) {
        check.push(format!("{field}.size_bytes"), "must be 0-4 GiB");
    }
    if media.width < 0 || media.height < 0 {
        check.push(format!("{field}.width"), "dimensions must not be negative");
    }
}

fn location(check: &mut Check, field: &str, location: &Location) {
    if !(-90.0..=90.0).contains(&location.latitude) {
        check.push(format!("{field}.latitude"), "must be -90..90");
    }
    if !(-180.0..=180.0).contains(&location.longitude) {
        check.push(format!("{field}.longitude"), "must be -180..180");
    }
    if !(location.accuracy_meters >= 0.0 && location.accuracy_meters.is_finite()) {
        check.push(format!("{field}.accuracy_meters"), "must be 0 or more");
    }
    check.text(&format!("{field}.name"), &location.name, 256, false);
    check.text(&format!("{field}.address"), &location.address, 512, false);
}

/// How long after sending a message its sender may edit it (48 hours; Telegram allows 48 h for
/// some edits, WhatsApp 15 minutes: long enough to fix a typo the next day).
pub const EDIT_WINDOW: chrono::Duration = chrono::Duration::hours(48);

/// Messages one user may send: a burst of 100, refilled at 10 a second (a person never comes
/// near it; a runaway client or a spammer does).
pub const SEND: echo_cache::Rule =
    echo_cache::Rule::per("message.send", 100, std::time::Duration::from_secs(10));

#[cfg(test)]
mod tests {
    use super::*;
    use echo_proto::echo::message::v1::Mention;

    fn fields(content_: &MessageContent) -> Vec<String> {
        let mut check = Check::new();
        content(&mut check, "content", content_);
        match check.finish() {
            Ok(()) => Vec::new(),
            Err(echo_runtime::Failure::InvalidArgument(v)) => {
                v.into_iter().map(|v| v.field).collect()
            }
            Err(other) => panic!("{other:?}"),
        }
    }

    #[test]
    fn mentions_are_measured_in_utf16_units() {
        let user = Uuid::now_v7().to_string();
        // "👋 @ada": the emoji is 2 UTF-16 units, so "@ada" is at offset 3, length 4.
        let mention = |offset, length| Mention {
            user_id: user.clone(),
            offset,
            length,
        };
        let message = |m| MessageContent {
            text: "👋 @ada".into(),
            mentions: vec![m],
            ..Default::default()
        };
        assert!(fields(&message(mention(3, 4))).is_empty());
        assert_eq!(fields(&message(mention(4, 4))), ["content.mentions[0]"]);
        assert_eq!(fields(&message(mention(0, 0))), ["content.mentions[0]"]);
    }

    #[test]
    fn empty_and_oversized_content_is_refused() {
        assert_eq!(fields(&MessageContent::default()), ["content"]);
        let long = MessageContent {
            text: "x".repeat(MAX_TEXT + 1),
            ..Default::default()
        };
        assert_eq!(fields(&long), ["content.text"]);
        let located = MessageContent {
            location: Some(Location {
                latitude: 91.0,
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(fields(&located), ["content.location.latitude"]);
    }
}
