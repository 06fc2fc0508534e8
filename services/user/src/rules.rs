//! UserService's field rules, quotas and rate limits: what a valid username, name, about text
//! and avatar are, and how much of anything one user may have or do.

use std::time::Duration;

use echo_cache::Rule;
use echo_proto::echo::common::v1::Media;
use echo_proto::echo::user::v1::PrivacySettings;
use echo_runtime::{Check, PageSize};

use crate::store::{Avatar, Privacy};

/// Longest display name and contact alias, in characters.
pub const MAX_NAME: usize = 64;
/// Longest about text, in characters.
pub const MAX_ABOUT: usize = 140;
/// Longest contact request note, in characters.
pub const MAX_REQUEST_MESSAGE: usize = 200;
/// Most contacts one user may keep.
pub const MAX_CONTACTS: u32 = 10_000;
/// Most users one BatchGetUsers call may name.
pub const MAX_BATCH: usize = 100;
/// Search queries, in characters after trimming (and dropping a leading `@`).
pub const SEARCH_QUERY_CHARS: std::ops::RangeInclusive<usize> = 2..=64;
/// Longest avatar URL, in bytes.
pub const MAX_URL: usize = 2048;
/// Largest avatar image, in bytes (a sanity bound on metadata; uploads happen elsewhere).
pub const MAX_AVATAR_BYTES: i64 = 20 * 1024 * 1024;

/// Lists of contacts, requests and blocked users.
pub const LIST_PAGE: PageSize = PageSize {
    default: 50,
    max: 200,
};
/// Search results.
pub const SEARCH_PAGE: PageSize = PageSize {
    default: 20,
    max: 50,
};

const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);

/// Phone look-ups per caller: 20 an hour. Strict, because a look-up answers "does this number
/// use Echo", and a generous limit would let anyone map a number range.
pub const PHONE_LOOKUP: Rule = Rule::per("user.lookup_phone", 20, HOUR);
/// Searches per caller: 120 an hour (typing a query issues one per pause).
pub const SEARCH: Rule = Rule::per("user.search", 120, HOUR);
/// Username changes per user: 10 a day (a handle that keeps moving is an impersonation tool).
pub const USERNAME_CHANGE: Rule = Rule::per("user.username_change", 10, DAY);
/// Contact requests per sender: 100 a day (spam).
pub const CONTACT_REQUEST: Rule = Rule::per("user.contact_request", 100, DAY);

/// Usernames nobody may claim: they would impersonate the service.
const RESERVED_USERNAMES: &[&str] = &[
    "admin",
    "administrator",
    "echo",
    "help",
    "official",
    "root",
    "security",
    "support",
    "system",
];

/// Checks a username: 5-32 of `a-z A-Z 0-9 _`, starting with a letter, not reserved. Returns
/// it as given (the case the user chose).
pub fn username(check: &mut Check, field: &str, input: &str) -> String {
    let name = input.trim();
    let first_is_letter = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
    if !(5..=32).contains(&name.len()) {
        check.push(field, "must be 5-32 characters");
    } else if !first_is_letter {
        check.push(field, "must start with a letter");
    } else if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        check.push(field, "may contain only letters, digits and _");
    } else if RESERVED_USERNAMES.contains(&name.to_ascii_lowercase().as_str()) {
        check.push(field, "is reserved");
    }
    name.to_owned()
}

/// Checks an avatar's metadata (under `field.`).
pub fn avatar(
    check: &mut Check,
    field: &str,
    media: &echo_proto::echo::common::v1::Media,
) -> Avatar {
    let url = media.url.trim();
    if url.is_empty() {
        check.push(format!("{field}.url"), "is required");
    } else if url.len() > MAX_URL {
        check.push(
            format!("{field}.url"),
            format!("must be at most {MAX_URL} bytes"),
        );
    } else if !(url.starts_with("https://") || url.starts_with("http://"))
        || url.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        check.push(format!("{field}.url"), "must be an http(s) URL");
    }
    let mime_type = media.mime_type.trim();
    if !mime_type.starts_with("image/") || mime_type.len() > 100 {
        check.push(
            format!("{field}.mime_type"),
            "must be an image type, e.g. image/jpeg",
        );
    } else {
        check.printable(&format!("{field}.mime_type"), mime_type, false);
    }
    if !(0..=MAX_AVATAR_BYTES).contains(&media.size_bytes) {
        check.push(
            format!("{field}.size_bytes"),
            format!("must be 0-{MAX_AVATAR_BYTES}"),
        );
    }
    for (name, value) in [("width", media.width), ("height", media.height)] {
        if !(0..=20_000).contains(&value) {
            check.push(format!("{field}.{name}"), "must be 0-20000");
        }
    }
    Avatar {
        url: url.to_owned(),
        mime_type: mime_type.to_owned(),
        size_bytes: media.size_bytes,
        width: media.width,
        height: media.height,
    }
}

/// An avatar as the wire's `Media`.
pub fn media(avatar: &Avatar) -> Media {
    Media {
        url: avatar.url.clone(),
        mime_type: avatar.mime_type.clone(),
        size_bytes: avatar.size_bytes,
        width: avatar.width,
        height: avatar.height,
        ..Media::default()
    }
}

/// Privacy settings as the wire's `PrivacySettings` (every field set, never UNSPECIFIED), as
/// the API answers them and `PrivacyChanged` carries them.
pub fn privacy_settings(privacy: Privacy) -> PrivacySettings {
    let value = |v: crate::store::Visibility| i32::from(v.code());
    PrivacySettings {
        last_seen: value(privacy.last_seen),
        profile_photo: value(privacy.profile_photo),
        about: value(privacy.about),
        find_by_phone: value(privacy.find_by_phone),
    }
}

/// The normalised search query: trimmed, without a leading `@`, lowercased.
pub fn search_query(check: &mut Check, input: &str) -> String {
    let query = input.trim();
    let query = query.strip_prefix('@').unwrap_or(query).trim();
    if !SEARCH_QUERY_CHARS.contains(&query.chars().count()) {
        check.push("query", "must be 2-64 characters");
    } else if query.chars().any(char::is_control) {
        check.push("query", "must not contain control characters");
    }
    crate::store::key(query)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn username_ok(input: &str) -> bool {
        let mut check = Check::new();
        username(&mut check, "username", input);
        check.is_clean()
    }

    #[test]
    fn usernames() {
        assert!(username_ok("ada_l"));
        assert!(username_ok("Ada_Lovelace_1815"));
        assert!(!username_ok("ada"), "too short");
        assert!(!username_ok(&"a".repeat(33)), "too long");
        assert!(!username_ok("1adal"), "starts with a digit");
        assert!(!username_ok("_adal"), "starts with _");
        assert!(!username_ok("ada-l"), "dash");
        assert!(!username_ok("ädalo"), "non-ASCII");
        assert!(!username_ok("Admin"), "reserved, any case");
    }

    #[test]
    fn avatar_metadata_refuses_control_characters() {
        let mut check = Check::new();
        let media = Media {
            url: "https://cdn.example/a\u{0}.jpg".into(),
            mime_type: "image/\u{0}jpeg".into(),
            ..Media::default()
        };
        avatar(&mut check, "profile.avatar", &media);
        let Err(echo_runtime::Failure::InvalidArgument(violations)) = check.finish() else {
            panic!("expected violations");
        };
        let fields: Vec<_> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["profile.avatar.url", "profile.avatar.mime_type"]);
    }

    #[test]
    fn search_queries_drop_the_at_sign_and_case() {
        let mut check = Check::new();
        assert_eq!(search_query(&mut check, "  @Ada "), "ada");
        assert!(check.is_clean());
        search_query(&mut check, "@a");
        assert!(!check.is_clean());
    }
}
