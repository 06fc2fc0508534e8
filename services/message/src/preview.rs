//! The short text that stands for a message where there is no room for all of it (a push
//! notification): the start of its current text, or a label for what it carries when it has
//! no text. One function, so every place that previews a message says the same.

use echo_proto::echo::message::v1::MessageContent;
use unicode_segmentation::UnicodeSegmentation;

/// Longest preview, in characters (Unicode scalar values).
pub const MAX_PREVIEW_CHARS: usize = 120;

/// The label of a message whose first attachment is an image.
pub const PHOTO: &str = "📷 Photo";
/// The label of a message whose first attachment is a video.
pub const VIDEO: &str = "🎬 Video";
/// The label of a message whose first attachment is audio (voice notes above all).
pub const AUDIO: &str = "🎤 Audio";
/// The label of a message whose first attachment is anything else.
pub const FILE: &str = "📎 File";
/// The label of a message that shares a location and nothing else.
pub const LOCATION: &str = "📍 Location";

/// The preview of `content`: its text without surrounding whitespace, cut to at most
/// [`MAX_PREVIEW_CHARS`] between grapheme clusters (an emoji or an accented letter is never
/// split); without text, the label of its first attachment or of its location.
pub fn preview(content: &MessageContent) -> String {
    let text = content.text.trim();
    if !text.is_empty() {
        return start_of(text, MAX_PREVIEW_CHARS).to_owned();
    }
    let label = match content.attachments.first() {
        Some(first) => attachment_label(&first.mime_type),
        None if content.location.is_some() => LOCATION,
        // The content rules refuse a message with none of the three.
        None => "",
    };
    label.to_owned()
}

/// The longest start of `text` made of whole grapheme clusters and at most `max_chars`
/// characters.
fn start_of(text: &str, max_chars: usize) -> &str {
    let mut chars = 0;
    let mut end = 0;
    for (at, grapheme) in text.grapheme_indices(true) {
        chars += grapheme.chars().count();
        if chars > max_chars {
            break;
        }
        end = at + grapheme.len();
    }
    text[..end].trim_end()
}

/// The label of an attachment of MIME type `mime` (compared without regard to case, as MIME
/// types are).
fn attachment_label(mime: &str) -> &'static str {
    let is = |prefix: &str| {
        mime.get(..prefix.len())
            .is_some_and(|start| start.eq_ignore_ascii_case(prefix))
    };
    if is("image/") {
        PHOTO
    } else if is("video/") {
        VIDEO
    } else if is("audio/") {
        AUDIO
    } else {
        FILE
    }
}

#[cfg(test)]
mod tests {
    use echo_proto::echo::common::v1::Media;
    use echo_proto::echo::message::v1::Location;

    use super::*;

    fn text(text: &str) -> MessageContent {
        MessageContent {
            text: text.to_owned(),
            ..Default::default()
        }
    }

    fn attached(mime_types: &[&str], caption: &str) -> MessageContent {
        MessageContent {
            attachments: mime_types
                .iter()
                .map(|mime| Media {
                    url: "https://cdn.example/x".to_owned(),
                    mime_type: (*mime).to_owned(),
                    ..Default::default()
                })
                .collect(),
            ..text(caption)
        }
    }

    #[test]
    fn short_text_is_the_preview_without_surrounding_whitespace() {
        assert_eq!(preview(&text("  hello\nthere \n")), "hello\nthere");
    }

    #[test]
    fn long_text_is_cut_to_the_limit() {
        let long = "a".repeat(500);
        assert_eq!(preview(&text(&long)), "a".repeat(MAX_PREVIEW_CHARS));
        let exact = "é".repeat(MAX_PREVIEW_CHARS);
        assert_eq!(preview(&text(&exact)), exact);
    }

    #[test]
    fn a_cut_never_splits_a_grapheme_cluster() {
        // A family emoji is 7 scalar values in one cluster: 119 letters leave room for none.
        let family = "👨‍👩‍👧‍👦";
        let input = format!("{}{family}tail", "a".repeat(MAX_PREVIEW_CHARS - 1));
        assert_eq!(preview(&text(&input)), "a".repeat(MAX_PREVIEW_CHARS - 1));
        // "e" + combining acute is two scalar values in one cluster.
        let input = format!("{}e\u{301}", "a".repeat(MAX_PREVIEW_CHARS - 1));
        assert_eq!(preview(&text(&input)), "a".repeat(MAX_PREVIEW_CHARS - 1));
        let fits = format!("{}e\u{301}", "a".repeat(MAX_PREVIEW_CHARS - 2));
        assert_eq!(preview(&text(&fits)), fits);
    }

    #[test]
    fn a_cut_at_a_space_leaves_no_trailing_space() {
        let input = format!("{} {}", "a".repeat(MAX_PREVIEW_CHARS - 1), "b".repeat(10));
        assert_eq!(preview(&text(&input)), "a".repeat(MAX_PREVIEW_CHARS - 1));
    }

    #[test]
    fn a_caption_wins_over_the_label() {
        assert_eq!(preview(&attached(&["image/png"], "look")), "look");
    }

    #[test]
    fn without_text_the_first_attachment_names_the_label() {
        let cases = [
            ("image/jpeg", PHOTO),
            ("IMAGE/PNG", PHOTO),
            ("video/mp4", VIDEO),
            ("audio/ogg; codecs=opus", AUDIO),
            ("application/pdf", FILE),
            ("", FILE),
        ];
        for (mime, label) in cases {
            assert_eq!(preview(&attached(&[mime], " ")), label, "{mime}");
        }
        assert_eq!(preview(&attached(&["video/mp4", "image/png"], "")), VIDEO);
    }

    #[test]
    fn a_bare_location_is_labelled() {
        let content = MessageContent {
            location: Some(Location {
                latitude: 51.5,
                longitude: -0.1,
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(preview(&content), LOCATION);
    }
}
