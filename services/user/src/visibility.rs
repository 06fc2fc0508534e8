//! What one user may see of another: the owner's privacy settings and blocks, applied to a
//! stored profile. Every read of another user's profile goes through [`public_view`].

use chrono::{DateTime, Utc};
use echo_ids::UserId;

use crate::store::{Avatar, Profile, Relation, Visibility};

/// Another user as the viewer may see them.
#[derive(Clone, Debug, PartialEq)]
pub struct PublicView {
    /// The user.
    pub user_id: UserId,
    /// '' for deleted accounts.
    pub display_name: String,
    /// '' when not set.
    pub username: String,
    /// '' when not set or hidden.
    pub about: String,
    /// None when not set or hidden.
    pub avatar: Option<Avatar>,
    /// When the account was created (None for deleted accounts).
    pub created_at: Option<DateTime<Utc>>,
    /// The account was deleted.
    pub deleted: bool,
    /// The viewer's side of the relation.
    pub relationship: Relationship,
}

/// The viewer's side of the relation, as shown to the viewer (never whether the other user
/// blocked them).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Relationship {
    /// In the viewer's contacts.
    pub contact: bool,
    /// Each has the other as a contact.
    pub mutual_contact: bool,
    /// The viewer's alias for them.
    pub alias: String,
    /// The viewer blocked them.
    pub blocked: bool,
}

/// Whether a viewer related to the owner by `relation` may see information the owner shares
/// with `setting`. A block by the owner hides everything beyond the public minimum.
pub fn may_see(setting: Visibility, relation: &Relation) -> bool {
    !relation.blocked_by
        && match setting {
            Visibility::Everyone => true,
            Visibility::Contacts => relation.in_their_contacts,
            Visibility::Nobody => false,
        }
}

/// `profile` as a viewer related to its owner by `relation` sees it. The owner sees
/// everything of themselves (`relation` is then the default, and `own` true).
pub fn public_view(profile: &Profile, relation: &Relation, own: bool) -> PublicView {
    let relationship = Relationship {
        contact: relation.is_contact(),
        mutual_contact: relation.is_contact() && relation.in_their_contacts,
        alias: relation.contact_alias.clone().unwrap_or_default(),
        blocked: relation.blocked,
    };
    if profile.deleted_at.is_some() {
        return PublicView {
            user_id: profile.user_id,
            display_name: String::new(),
            username: String::new(),
            about: String::new(),
            avatar: None,
            created_at: None,
            deleted: true,
            relationship,
        };
    }
    let shows = |setting| own || may_see(setting, relation);
    PublicView {
        user_id: profile.user_id,
        display_name: profile.display_name.clone(),
        username: profile.username.clone().unwrap_or_default(),
        about: if shows(profile.privacy.about) {
            profile.about.clone()
        } else {
            String::new()
        },
        avatar: profile
            .avatar
            .clone()
            .filter(|_| shows(profile.privacy.profile_photo)),
        created_at: Some(profile.created_at),
        deleted: false,
        relationship,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Privacy;

    fn profile(privacy: Privacy) -> Profile {
        Profile {
            user_id: UserId::new_v7(),
            display_name: "Ada".into(),
            username: Some("ada_l".into()),
            about: "math".into(),
            avatar: Some(Avatar {
                url: "https://x/a.jpg".into(),
                mime_type: "image/jpeg".into(),
                size_bytes: 1,
                width: 1,
                height: 1,
            }),
            phone_number: Some("+14155552671".into()),
            privacy,
            registered: true,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            deleted_at: None,
        }
    }

    #[test]
    fn settings_and_blocks_hide_details_but_not_the_public_minimum() {
        let contacts_only = Privacy {
            about: Visibility::Contacts,
            profile_photo: Visibility::Nobody,
            ..Privacy::default()
        };
        let owner = profile(contacts_only);
        let stranger = public_view(&owner, &Relation::default(), false);
        assert_eq!(
            (stranger.about.as_str(), stranger.avatar.is_none()),
            ("", true)
        );
        let their_contact = Relation {
            in_their_contacts: true,
            ..Relation::default()
        };
        let friend = public_view(&owner, &their_contact, false);
        assert_eq!(
            (friend.about.as_str(), friend.avatar.is_none()),
            ("math", true)
        );
        let everyone = profile(Privacy::default());
        let blocked_by = Relation {
            blocked_by: true,
            in_their_contacts: true,
            ..Relation::default()
        };
        let seen = public_view(&everyone, &blocked_by, false);
        assert_eq!(seen.about, "");
        assert!(seen.avatar.is_none());
        assert_eq!(
            (seen.display_name.as_str(), seen.username.as_str()),
            ("Ada", "ada_l")
        );
        assert!(
            public_view(&everyone, &Relation::default(), false)
                .avatar
                .is_some()
        );
    }

    #[test]
    fn deleted_accounts_show_nothing_but_their_id() {
        let mut gone = profile(Privacy::default());
        gone.deleted_at = Some(Utc::now());
        let view = public_view(&gone, &Relation::default(), false);
        assert!(view.deleted);
        assert_eq!((view.display_name.as_str(), view.created_at), ("", None));
    }
}
