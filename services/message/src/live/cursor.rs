//! The Subscribe cursor: `{epoch, position}` in the message outbox, opaque to clients.
//!
//! Encoded as `v1.` + base64url (no padding) of 16 bytes of epoch, 8 of transaction and 8 of
//! row id (big-endian): 46 ASCII characters, under the 256 the contract allows. Clients never
//! parse it; the version prefix lets the format change without misreading old cursors.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use echo_bus::Position;
use uuid::Uuid;

const PREFIX: &str = "v1.";
const BYTES: usize = 32;

/// A resume point: everything at or below `position` in the outbox of `epoch` was delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    /// The outbox's epoch (a rebuilt or restored database has a new one).
    pub epoch: Uuid,
    /// The commit-safe outbox position.
    pub position: Position,
}

impl Cursor {
    /// The wire form.
    pub fn encode(&self) -> String {
        let mut bytes = [0u8; BYTES];
        bytes[..16].copy_from_slice(self.epoch.as_bytes());
        bytes[16..24].copy_from_slice(&self.position.tx.to_be_bytes());
        bytes[24..].copy_from_slice(&self.position.id.to_be_bytes());
        format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Parse a cursor a client sent back; `None` when it is not one of ours.
    pub fn decode(text: &str) -> Option<Cursor> {
        let body = text.strip_prefix(PREFIX)?;
        let bytes = URL_SAFE_NO_PAD.decode(body).ok()?;
        let bytes: [u8; BYTES] = bytes.try_into().ok()?;
        let epoch = Uuid::from_slice(&bytes[..16]).ok()?;
        let tx = i64::from_be_bytes(bytes[16..24].try_into().ok()?);
        let id = i64::from_be_bytes(bytes[24..].try_into().ok()?);
        (tx >= 0 && id >= 0).then_some(Cursor {
            epoch,
            position: Position { tx, id },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_stays_short() {
        let cursor = Cursor {
            epoch: Uuid::now_v7(),
            position: Position {
                tx: 123_456,
                id: i64::MAX,
            },
        };
        let text = cursor.encode();
        assert!(text.is_ascii(), "{text}");
        assert_eq!(text.len(), 46, "as docs/live.md says: {text}");
        assert_eq!(Cursor::decode(&text), Some(cursor));
    }

    #[test]
    fn refuses_what_it_did_not_make() {
        let good = Cursor {
            epoch: Uuid::now_v7(),
            position: Position { tx: 1, id: 2 },
        }
        .encode();
        for bad in [
            "",
            "v1.",
            "v2.AAAA",
            "garbage",
            &good[..good.len() - 1],
            &good.replace("v1.", "v0."),
        ] {
            assert_eq!(Cursor::decode(bad), None, "{bad}");
        }
    }
}
