//! MessageService's field rules and page sizes: what a valid message, title and key are.
//!
//! One idea, kept whole: every field rule of the service's requests, so a limit (text bytes,
//! mentions, ttl bounds) is defined and checked in one place and the api modules only call it.

use echo_ids::UserId;
use echo_proto::echo::common::v1::Media;
use echo_proto::echo::message::v1::{Location, MessageContent};
use echo_runtime::{Check, PageSize};

/// Longest message text, in UTF-8 bytes (`MessageContent.text`).
pub const MAX_TEXT: usize = 4096;
/// Most mentions in one message.
pub const MAX_MENTIONS: usize = 50;
/// Most attachments in one message.
pub const MAX_ATTACHMENTS: usize = 10;
/// Longest group or channel title, in UTF-8 bytes (`CreateConversationRequest.title`).
pub const MAX_TITLE: usize = 256;
/// Longest description, in UTF-8 bytes.
pub const MAX_DESCRIPTION: usize = 2048;
/// Most members a group or channel may be created with besides the creator (more are added
/// or join by invite later).
pub const MAX_INITIAL_MEMBERS: usize = 256;
/// Longest location name, in UTF-8 bytes.
pub const MAX_PLACE_NAME: usize = 256;
/// Longest location address, in UTF-8 bytes.
pub const MAX_ADDRESS: usize = 512;
/// Longest idempotency key (`client_message_id`, `client_request_id`), in bytes.
pub const MAX_CLIENT_KEY: usize = 64;
/// Longest attachment file name, in UTF-8 bytes (`Media.file_name`).
pub const MAX_FILE_NAME: usize = 255;
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

/// Checks a conversation's message ttl: unset or zero turns it off; otherwise whole seconds
/// from [`MIN_MESSAGE_TTL`] to [`MAX_MESSAGE_TTL`].
///
/// [`MIN_MESSAGE_TTL`]: crate::conversations::store_update::MIN_MESSAGE_TTL
/// [`MAX_MESSAGE_TTL`]: crate::conversations::store_update::MAX_MESSAGE_TTL
pub fn message_ttl(
    check: &mut Check,
    field: &str,
    input: Option<&prost_types::Duration>,
) -> Option<chrono::TimeDelta> {
    use crate::conversations::store_update::{MAX_MESSAGE_TTL, MIN_MESSAGE_TTL};
    let ttl = input.filter(|d| d.seconds != 0 || d.nanos != 0)?;
    let (min, max) = (MIN_MESSAGE_TTL.num_seconds(), MAX_MESSAGE_TTL.num_seconds());
    if ttl.nanos != 0 || ttl.seconds < min || ttl.seconds > max {
        check.push(
            field,
            format!("must be whole seconds from {min} (1 hour) to {max} (90 days), or unset"),
        );
        return None;
    }
    Some(chrono::TimeDelta::seconds(ttl.seconds))
}

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

/// Checks a one-line text field (title, description, place name) the way
/// [`Check::text`] does, but limited in UTF-8 bytes as the proto states its limits: trimmed;
/// when `required`, not blank; at most `max_bytes` bytes; no control characters. Returns the
/// trimmed text.
pub fn text_bytes(
    check: &mut Check,
    field: &str,
    input: &str,
    max_bytes: usize,
    required: bool,
) -> String {
    let text = input.trim();
    if required && text.is_empty() {
        check.push(field, "is required (not blank)");
    } else if text.len() > max_bytes {
        check.push(field, format!("must be at most {max_bytes} UTF-8 bytes"));
    } else {
        check.printable(field, text, false);
    }
    text.to_owned()
}

/// Checks a message's content under `field`; returns the distinct mentioned users (anyone
/// may be mentioned; the store decides whom a mention counts for).
pub fn content(check: &mut Check, field: &str, content: &MessageContent) -> Vec<UserId> {
    let text = &content.text;
    if text.len() > MAX_TEXT {
        check.push(
            format!("{field}.text"),
            format!("must be at most {MAX_TEXT} UTF-8 bytes"),
        );
    } else {
        check.printable(&format!("{field}.text"), text, true);
    }
    if text.trim().is_empty() && content.attachments.is_empty() && content.location.is_none() {
        check.push(field, "needs text, an attachment or a location");
    }
    let mentioned = mentions(check, field, content);
    if content.attachments.len() > MAX_ATTACHMENTS {
        check.push(
            format!("{field}.attachments"),
            format!("at most {MAX_ATTACHMENTS}"),
        );
    } else {
        for (i, media) in content.attachments.iter().enumerate() {
            attachment(check, &format!("{field}.attachments[{i}]"), media);
        }
    }
    if let Some(location) = &content.location {
        self::location(check, &format!("{field}.location"), location);
    }
    mentioned
}

/// Checks the mentions of `content` (under `field.mentions`); returns the distinct mentioned
/// users. More than [`MAX_MENTIONS`] is one violation, without looking at each: a request
/// with thousands of bad mentions must not cost thousands of checks and violations.
fn mentions(check: &mut Check, field: &str, content: &MessageContent) -> Vec<UserId> {
    let mut mentioned = Vec::new();
    if content.mentions.len() > MAX_MENTIONS {
        check.push(
            format!("{field}.mentions"),
            format!("at most {MAX_MENTIONS}"),
        );
        return mentioned;
    }
    let utf16_len = content.text.encode_utf16().count() as i64;
    // Where the previous mention ends: mentions come ordered by offset and do not overlap.
    let mut previous_end = 0;
    for (i, mention) in content.mentions.iter().enumerate() {
        let at = format!("{field}.mentions[{i}]");
        if let Some(user) = check.id_of(&format!("{at}.user_id"), &mention.user_id)
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
        } else if offset < previous_end {
            check.push(
                at,
                "mentions must be ordered by offset and must not overlap",
            );
        } else {
            previous_end = offset + length;
        }
    }
    mentioned
}

/// Checks media metadata (attachments, avatars) under `field`.
pub fn attachment(check: &mut Check, field: &str, media: &Media) {
    let url = media.url.trim();
    if !(url.starts_with("https://") || url.starts_with("http://"))
        || url.len() > 2048
        || url.chars().any(|c| c.is_whitespace() || c.is_control())
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
    } else {
        check.printable(&format!("{field}.mime_type"), &media.mime_type, false);
    }
    if media.file_name.len() > MAX_FILE_NAME {
        check.push(
            format!("{field}.file_name"),
            format!("must be at most {MAX_FILE_NAME} UTF-8 bytes"),
        );
    } else {
        check.printable(&format!("{field}.file_name"), &media.file_name, false);
    }
    let thumbnail = media.thumbnail_url.as_str();
    if !thumbnail.is_empty()
        && (!(thumbnail.starts_with("https://") || thumbnail.starts_with("http://"))
            || thumbnail.len() > 2048
            || thumbnail
                .chars()
                .any(|c| c.is_whitespace() || c.is_control()))
    {
        check.push(
            format!("{field}.thumbnail_url"),
            "must be empty or an http(s) URL of at most 2048 bytes",
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
    let name = format!("{field}.name");
    text_bytes(check, &name, &location.name, MAX_PLACE_NAME, false);
    let address = format!("{field}.address");
    text_bytes(check, &address, &location.address, MAX_ADDRESS, false);
}

/// How long after sending a message its sender may edit it (48 hours; Telegram allows 48 h for
/// some edits, WhatsApp 15 minutes: long enough to fix a typo the next day).
pub const EDIT_WINDOW: chrono::Duration = chrono::Duration::hours(48);

/// Messages one user may send: a burst of 100, refilled at 10 a second (a person never comes
/// near it; a runaway client or a spammer does).
pub const SEND: echo_cache::Rule =
    echo_cache::Rule::per("message.send", 100, std::time::Duration::from_secs(10));

/// Reports one user may file: a burst of 20, refilled at 20 per 10 minutes (a person reporting
/// a wave of spam fits; a client used to flood the moderation queue does not).
pub const REPORT: echo_cache::Rule =
    echo_cache::Rule::per("message.report", 20, std::time::Duration::from_secs(600));

/// Typing calls one user may make: a burst of 30, refilled at 3 a second (a client renewing
/// every ~4 s in a few conversations never comes near it).
pub const TYPING: echo_cache::Rule =
    echo_cache::Rule::per("message.typing", 30, std::time::Duration::from_secs(10));

/// Typing indicators forwarded per device and conversation: one per 2 s (message_service.proto);
/// calls beyond it succeed and are absorbed.
pub const TYPING_FORWARD: echo_cache::Rule = echo_cache::Rule::per(
    "message.typing.forward",
    1,
    std::time::Duration::from_secs(2),
);

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
        let user = UserId::new_v7().to_string();
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
        // Ordered by offset, not overlapping.
        let two = |first, second| MessageContent {
            text: "@ada @bob".into(),
            mentions: vec![first, second],
            ..Default::default()
        };
        assert!(fields(&two(mention(0, 4), mention(5, 4))).is_empty());
        assert_eq!(
            fields(&two(mention(5, 4), mention(0, 4))),
            ["content.mentions[1]"]
        );
        assert_eq!(
            fields(&two(mention(0, 4), mention(3, 4))),
            ["content.mentions[1]"]
        );
    }

    #[test]
    fn empty_and_oversized_content_is_refused() {
        assert_eq!(fields(&MessageContent::default()), ["content"]);
        let long = MessageContent {
            text: "x".repeat(MAX_TEXT + 1),
            ..Default::default()
        };
        assert_eq!(fields(&long), ["content.text"]);
        // The limit is in UTF-8 bytes: 1366 three-byte characters are 4098 bytes.
        let wide = MessageContent {
            text: "€".repeat(1366),
            ..Default::default()
        };
        assert_eq!(fields(&wide), ["content.text"]);
        let fits = MessageContent {
            text: "€".repeat(1365),
            ..Default::default()
        };
        assert!(fields(&fits).is_empty());
        let located = MessageContent {
            location: Some(Location {
                latitude: 91.0,
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(fields(&located), ["content.location.latitude"]);
    }

    #[test]
    fn text_keeps_line_breaks_but_refuses_nul_and_other_controls() {
        let text = |text: &str| MessageContent {
            text: text.into(),
            ..Default::default()
        };
        assert!(fields(&text("two\nlines\r\n\tindented")).is_empty());
        for bad in ["a\u{0}b", "\u{1b}[2J", "bell\u{7}", "del\u{7f}"] {
            assert_eq!(fields(&text(bad)), ["content.text"], "{bad:?}");
        }
        let media = |file_name: &str, mime_type: &str| MessageContent {
            attachments: vec![Media {
                url: "https://cdn.example/a".into(),
                mime_type: mime_type.into(),
                file_name: file_name.into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        assert!(fields(&media("report.pdf", "application/pdf")).is_empty());
        assert_eq!(
            fields(&media("a\u{0}.pdf", "application/pdf\u{0}")),
            [
                "content.attachments[0].mime_type",
                "content.attachments[0].file_name"
            ]
        );
    }

    #[test]
    fn too_many_mentions_are_one_violation_without_checking_each() {
        let content = MessageContent {
            text: "hi".into(),
            mentions: vec![Mention::default(); 10_000],
            ..Default::default()
        };
        assert_eq!(fields(&content), ["content.mentions"]);
    }

    fn text_fields(input: &str, max: usize, required: bool) -> Vec<String> {
        let mut check = Check::new();
        text_bytes(&mut check, "title", input, max, required);
        match check.finish() {
            Ok(()) => Vec::new(),
            Err(echo_runtime::Failure::InvalidArgument(v)) => {
                v.into_iter().map(|v| v.field).collect()
            }
            Err(other) => panic!("{other:?}"),
        }
    }

    #[test]
    fn titles_are_measured_in_utf8_bytes_and_must_not_be_blank() {
        // 128 two-byte characters are 256 bytes: the most a title may hold.
        assert!(text_fields(&"é".repeat(128), MAX_TITLE, true).is_empty());
        assert_eq!(text_fields(&"é".repeat(129), MAX_TITLE, true), ["title"]);
        assert_eq!(text_fields("  \t ", MAX_TITLE, true), ["title"]);
        assert!(text_fields("", MAX_DESCRIPTION, false).is_empty());
        assert_eq!(text_fields("a\u{7}b", MAX_TITLE, true), ["title"]);
    }
}
