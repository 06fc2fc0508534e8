//! List pagination (DESIGN §4): `page_size` + opaque `page_token` → `next_page_token`.
//!
//! A token is the position after the last item served (a keyset, never an offset, so pages
//! stay right while rows are added), serialised as JSON and base64url-encoded. Tokens are not
//! secret: they only ever select within what the caller may already list. A token from one
//! list is refused by another because each list decodes its own position type, and a list
//! that depends on more (a search query) puts that in the position too.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Check;

/// A list's page-size rule: 0 means `default`, above `max` is capped, negative is refused.
#[derive(Clone, Copy, Debug)]
pub struct PageSize {
    /// Used when the request says 0.
    pub default: u32,
    /// The largest page served.
    pub max: u32,
}

/// A parsed page request.
#[derive(Debug)]
pub struct Page<P> {
    /// How many items to return.
    pub size: usize,
    /// Where to start: None for the first page.
    pub after: Option<P>,
}

impl<P> Page<P> {
    /// Cut `items` (fetched with a limit of `size + 1`) to the page, and the token for the
    /// next one, made from the last item served, when more remain.
    pub fn finish<T, F>(&self, mut items: Vec<T>, position_of: F) -> (Vec<T>, String)
    where
        F: Fn(&T) -> P,
        P: Serialize,
    {
        let more = items.len() > self.size;
        items.truncate(self.size);
        let token = match (more, items.last()) {
            (true, Some(last)) => encode(&position_of(last)),
            _ => String::new(),
        };
        (items, token)
    }

    /// The limit to ask storage for: one more than the page, to learn whether more remain.
    pub fn fetch_limit(&self) -> usize {
        self.size + 1
    }
}

impl Check {
    /// `page_size` and `page_token` of a list request, by `rule`.
    pub fn page<P: DeserializeOwned>(&mut self, size: i32, token: &str, rule: PageSize) -> Page<P> {
        let size = match u32::try_from(size) {
            Ok(0) => rule.default,
            Ok(n) => n.min(rule.max),
            Err(_) => {
                self.push("page_size", "must not be negative");
                rule.default
            }
        };
        let after = match token {
            "" => None,
            token => {
                let position = decode(token);
                if position.is_none() {
                    self.push("page_token", "is not a token from this list and query");
                }
                position
            }
        };
        Page {
            size: size as usize,
            after,
        }
    }
}

/// The opaque token for `position`.
pub fn encode<P: Serialize>(position: &P) -> String {
    let json = serde_json::to_vec(position).expect("page positions serialise");
    URL_SAFE_NO_PAD.encode(json)
}

/// The position in `token`, if it is one of type `P`. A token holding a NUL character is
/// none of ours (no stored text holds one): refused here, because a position is bound into SQL
/// and PostgreSQL refuses NUL in text (INTERNAL there, OK on SQLite).
pub fn decode<P: DeserializeOwned>(token: &str) -> Option<P> {
    let json = URL_SAFE_NO_PAD.decode(token).ok()?;
    let value: serde_json::Value = serde_json::from_slice(&json).ok()?;
    if holds_nul(&value) {
        return None;
    }
    serde_json::from_value(value).ok()
}

fn holds_nul(value: &serde_json::Value) -> bool {
    use serde_json::Value;
    match value {
        Value::String(text) => text.contains('\0'),
        Value::Array(items) => items.iter().any(holds_nul),
        Value::Object(fields) => fields.iter().any(|(k, v)| k.contains('\0') || holds_nul(v)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct After {
        name: String,
        id: u32,
    }

    const RULE: PageSize = PageSize {
        default: 50,
        max: 200,
    };

    #[test]
    fn sizes_default_cap_and_refuse_negatives() {
        let mut check = Check::new();
        assert_eq!(check.page::<After>(0, "", RULE).size, 50);
        assert_eq!(check.page::<After>(7, "", RULE).size, 7);
        assert_eq!(check.page::<After>(5000, "", RULE).size, 200);
        assert!(check.is_clean());
        check.page::<After>(-1, "", RULE);
        assert!(!check.is_clean());
    }

    #[test]
    fn tokens_round_trip_and_foreign_tokens_are_refused() {
        let page = Page::<After> {
            size: 2,
            after: None,
        };
        let (items, token) = page.finish(vec![1, 2, 3], |n| After {
            name: format!("n{n}"),
            id: *n,
        });
        assert_eq!(items, [1, 2]);
        let mut check = Check::new();
        let next = check.page::<After>(2, &token, RULE);
        assert_eq!(
            next.after,
            Some(After {
                name: "n2".into(),
                id: 2
            })
        );
        let (_, last) = page.finish(vec![1], |n| After {
            name: String::new(),
            id: *n,
        });
        assert_eq!(last, "", "no token when nothing remains");
        check.page::<After>(2, "garbage!", RULE);
        check.page::<After>(2, &encode(&"a string"), RULE);
        let nul = After {
            name: "a\u{0}b".into(),
            id: 1,
        };
        assert_eq!(decode::<After>(&encode(&nul)), None, "NUL reaches no SQL");
        let Err(crate::Failure::InvalidArgument(violations)) = check.finish() else {
            panic!("expected violations");
        };
        assert_eq!(violations.len(), 2);
    }
}
