//! Profiles as stored: privacy settings, avatar, the registration that creates them, the
//! changes users make, and search (the keys both stores index, ranks, positions).

use chrono::{DateTime, Utc};
use echo_bus::Event;
use echo_ids::UserId;
use serde::{Deserialize, Serialize};

/// Who may see a piece of a user's information (the `echo.user.v1.Visibility` values).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Visibility {
    /// Every signed-in user (1).
    Everyone,
    /// Users in the owner's contact list (2).
    Contacts,
    /// Only the owner (3).
    Nobody,
}

impl Visibility {
    /// The stored (and wire) value.
    pub fn code(self) -> i16 {
        match self {
            Visibility::Everyone => 1,
            Visibility::Contacts => 2,
            Visibility::Nobody => 3,
        }
    }

    /// The value stored as `code`; unknown codes read as the most private choice.
    pub fn from_code(code: i64) -> Self {
        match code {
            1 => Visibility::Everyone,
            2 => Visibility::Contacts,
            _ => Visibility::Nobody,
        }
    }
}

/// A user's privacy settings. Defaults: last seen CONTACTS, the rest EVERYONE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Privacy {
    /// Online status and last seen.
    pub last_seen: Visibility,
    /// The avatar.
    pub profile_photo: Visibility,
    /// The about text.
    pub about: Visibility,
    /// Being found by LookupByPhone.
    pub find_by_phone: Visibility,
}

impl Default for Privacy {
    fn default() -> Self {
        Self {
            last_seen: Visibility::Contacts,
            profile_photo: Visibility::Everyone,
            about: Visibility::Everyone,
            find_by_phone: Visibility::Everyone,
        }
    }
}

/// A change to privacy settings: `None` leaves a setting as it is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PrivacyChange {
    /// New `last_seen`.
    pub last_seen: Option<Visibility>,
    /// New `profile_photo`.
    pub profile_photo: Option<Visibility>,
    /// New `about`.
    pub about: Option<Visibility>,
    /// New `find_by_phone`.
    pub find_by_phone: Option<Visibility>,
}

/// A profile photo: metadata only (uploads are not Echo's business).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Avatar {
    /// Where the image is.
    pub url: String,
    /// `image/…`.
    pub mime_type: String,
    /// Size in bytes (0 when unknown).
    pub size_bytes: i64,
    /// Pixels (0 when unknown).
    pub width: i32,
    /// Pixels (0 when unknown).
    pub height: i32,
}

/// A profile as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    /// UUIDv7.
    pub user_id: UserId,
    /// 1-64 characters ('' for deleted accounts and, rarely, before registration arrives).
    pub display_name: String,
    /// With the case the user chose.
    pub username: Option<String>,
    /// 0-140 characters.
    pub about: String,
    /// None when there is none.
    pub avatar: Option<Avatar>,
    /// E.164; None until the registration event arrives, and after deletion.
    pub phone_number: Option<String>,
    /// The owner's privacy settings.
    pub privacy: Privacy,
    /// True once the registration event was applied.
    pub registered: bool,
    /// When the account was created (the registration's time once known).
    pub created_at: DateTime<Utc>,
    /// When the profile last changed.
    pub updated_at: DateTime<Utc>,
    /// When the account was deleted; the profile is then a tombstone.
    pub deleted_at: Option<DateTime<Utc>>,
}

/// What the `user registered` event tells the user service.
#[derive(Clone, Debug, PartialEq)]
pub struct Registration {
    /// The new user.
    pub user_id: UserId,
    /// Chosen at registration.
    pub display_name: String,
    /// E.164.
    pub phone_number: String,
    /// When the account was created.
    pub registered_at: DateTime<Utc>,
}

/// A change to a profile: `None` leaves a field as it is.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProfileChange {
    /// New display name (already validated and trimmed).
    pub display_name: Option<String>,
    /// `Some(None)` removes the username.
    pub username: Option<Option<String>>,
    /// New about text.
    pub about: Option<String>,
    /// `Some(None)` removes the avatar.
    pub avatar: Option<Option<Avatar>>,
}

/// Builds the event a committed profile change publishes, from the profile after the change.
pub type ProfileEvent<'a> = &'a (dyn Fn(&Profile) -> Event + Send + Sync);

/// A search hit's rank: lower is better.
pub mod rank {
    /// The query is exactly the username.
    pub const EXACT_USERNAME: i16 = 0;
    /// The user is in the viewer's contacts.
    pub const CONTACT: i16 = 1;
    /// Any other discoverable user.
    pub const OTHER: i16 = 2;
}

/// Where a search page starts: after this hit. Carries the query, so a token from another
/// query is refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchPosition {
    /// The normalised query the token belongs to.
    pub query: String,
    /// The last hit's rank.
    pub rank: i16,
    /// The last hit's lowercased display name.
    pub display_name_key: String,
    /// The last hit's user id (ties).
    pub user_id: UserId,
}

/// One search result.
#[derive(Clone, Debug, PartialEq)]
pub struct SearchHit {
    /// The user.
    pub profile: Profile,
    /// See [`rank`].
    pub rank: i16,
}

/// The search terms of a profile: its lowercased username, every lowercased word of its
/// display name (split on whitespace and punctuation) and the whole lowercased display name
/// (so "ada lov" finds "Ada Lovelace"), deduplicated. Both stores index these.
pub fn search_terms(display_name: &str, username: Option<&str>) -> Vec<String> {
    let whole_name = display_name.trim().to_lowercase();
    let mut terms: Vec<String> = display_name
        .split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(str::to_lowercase)
        .chain(username.map(str::to_lowercase))
        .chain((!whole_name.is_empty()).then_some(whole_name))
        .collect();
    terms.sort();
    terms.dedup();
    terms
}

/// The lowercased form every sort and uniqueness key uses.
pub fn key(text: &str) -> String {
    text.to_lowercase()
}

/// The exclusive upper bound of the keys starting with `prefix` (byte-wise order): every such
/// key is `>= prefix` and `< prefix_end(prefix)`.
pub fn prefix_end(prefix: &str) -> String {
    let mut end = prefix.to_owned();
    end.push(char::MAX);
    end
}
