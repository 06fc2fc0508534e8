//! Echo's id vocabulary: one newtype per kind of id, so a function taking a user and a contact
//! request cannot be handed them the other way round (`fn accept(caller: UserId, id:
//! ContactRequestId)`), and a signature says what it takes.
//!
//! Every id is a UUID (v7 when Echo makes it) underneath, `#[repr(transparent)]` and `Copy`.
//! They are parsed once, at a service's boundary (`api/`, with `Check::id_of` collecting the
//! field violations), and turned back into a `Uuid` only where they leave the domain: bound in
//! SQL (`Id(user.into())`), written into a protobuf or handed to `echo_authn`'s token issuer
//! (its `Caller` and revocations speak these types). Parsing is [`Uuid::try_parse`], as `Check::id` has always done: a
//! UUID in any of its written forms and nothing else (no surrounding spaces, no other text).
//!
//! A crate of its own with `uuid` as its only dependency (`serde` optional, for ids carried in
//! page tokens), so that clients, `echo_authn` and every service can share it without pulling
//! in the database or the server stack.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

/// Defines an id newtype over [`Uuid`] with the vocabulary's conversions and formatting.
macro_rules! ids {
    ($($(#[$doc:meta])* $name:ident;)+) => {$(
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
        #[cfg_attr(feature = "serde", serde(transparent))]
        #[repr(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A new id: a UUIDv7, so ids made later sort later.
            pub fn new_v7() -> Self {
                Self(Uuid::now_v7())
            }

            /// The all-zero id, for a field that a callee fills in or ignores.
            pub const fn nil() -> Self {
                Self(Uuid::nil())
            }

            /// The UUID underneath.
            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        /// `UserId(0190…-…)`: the kind shows in logs and assertion failures.
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.0.hyphenated())
            }
        }

        /// Hyphenated lowercase, as on the wire and in event subjects.
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        /// A UUID in any of its written forms, nothing else: see [`Uuid::try_parse`].
        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(input: &str) -> Result<Self, Self::Err> {
                Uuid::try_parse(input).map(Self)
            }
        }
    )+};
}

ids! {
    /// An account, and the person behind it (auth's `accounts`, user's `profiles`).
    UserId;
    /// A signed-in device, issued by the server at sign-in (the access token's `did`).
    DeviceId;
    /// A session: one sign-in of one device (the access token's `sid`).
    SessionId;
    /// A conversation (direct, group or channel).
    ConversationId;
    /// A message in a conversation.
    MessageId;
    /// A contact request from one user to another.
    ContactRequestId;
    /// A report of a message for abuse (the moderation record).
    ReportId;
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "0190a4b2-7c3d-7e8f-9a0b-1c2d3e4f5a6b";

    #[test]
    fn parses_only_uuids_and_prints_hyphenated() {
        let id: UserId = TEXT.parse().unwrap();
        assert_eq!(id.to_string(), TEXT);
        assert_eq!(format!("{id:?}"), format!("UserId({TEXT})"));
        let upper: UserId = TEXT.to_uppercase().parse().unwrap();
        assert_eq!(upper, id, "hex digits in either case");
        assert!("0190a4b27c3d7e8f9a0b1c2d3e4f5a6b".parse::<UserId>().is_ok());
        for bad in [
            "",
            "nope",
            &format!(" {TEXT}"),
            &TEXT[1..],
            &format!("{TEXT}0"),
        ] {
            assert!(bad.parse::<UserId>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn converts_to_and_from_uuid_without_changing_it() {
        let uuid = Uuid::now_v7();
        let id = SessionId::from(uuid);
        assert_eq!(Uuid::from(id), uuid);
        assert_eq!(*id.as_uuid(), uuid);
        assert_eq!(DeviceId::nil().as_uuid(), &Uuid::nil());
        assert_eq!(
            std::mem::size_of::<MessageId>(),
            std::mem::size_of::<Uuid>()
        );
    }

    #[test]
    fn new_ids_are_v7_and_sort_by_creation() {
        let first = ContactRequestId::new_v7();
        let second = ContactRequestId::new_v7();
        assert_eq!(first.as_uuid().get_version_num(), 7);
        assert!(first < second);
        assert_ne!(ConversationId::new_v7(), ConversationId::new_v7());
    }

    #[cfg(feature = "serde")]
    #[test]
    fn serialises_exactly_as_its_uuid() {
        let uuid = Uuid::now_v7();
        let id = UserId::from(uuid);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, serde_json::to_string(&uuid).unwrap());
        assert_eq!(serde_json::from_str::<UserId>(&json).unwrap(), id);
    }
}
