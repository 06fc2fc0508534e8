//! Request validation that reports every malformed field at once (DESIGN §4: INVALID_ARGUMENT
//! with one `BadRequest` field violation per bad field).

use std::fmt::Display;

use uuid::Uuid;

use crate::{Failure, Violation};

/// Collects field violations while a handler parses its request; [`Check::finish`] turns them
/// into one INVALID_ARGUMENT.
#[derive(Debug, Default)]
pub struct Check(Vec<Violation>);

impl Check {
    /// An empty check.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `field` is malformed.
    pub fn push(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(Violation::new(field, description));
    }

    /// The parsed value, or None with the error recorded against `field`.
    pub fn parse<T, E: Display>(&mut self, field: &str, parsed: Result<T, E>) -> Option<T> {
        parsed.map_err(|why| self.push(field, why.to_string())).ok()
    }

    /// Records `field` as missing when `input` is empty; true when present.
    pub fn required(&mut self, field: &str, input: &str) -> bool {
        if input.is_empty() {
            self.push(field, "is required");
        }
        !input.is_empty()
    }

    /// `input` trimmed, checked for length (in characters), presence and control characters.
    pub fn text(&mut self, field: &str, input: &str, max_chars: usize, required: bool) -> String {
        let text = input.trim();
        if required && text.is_empty() {
            self.push(field, "is required");
        } else if text.chars().count() > max_chars {
            self.push(field, format!("must be at most {max_chars} characters"));
        } else {
            self.printable(field, text, false);
        }
        text.to_owned()
    }

    /// Records `field` when `input` holds a control character (NUL, escape, …) and returns
    /// false. Every free-text field goes through this (or [`Check::text`], which calls it)
    /// before it reaches storage: PostgreSQL refuses NUL in text while SQLite stores it, so
    /// without it the same request would be INTERNAL on one backend and OK on the other.
    /// `multiline` text (a message) may hold tabs and line breaks.
    pub fn printable(&mut self, field: &str, input: &str, multiline: bool) -> bool {
        let allowed = |c: char| multiline && matches!(c, '\t' | '\n' | '\r');
        let clean = !input.chars().any(|c| c.is_control() && !allowed(c));
        if !clean && multiline {
            self.push(
                field,
                "must not contain control characters other than tabs and line breaks",
            );
        } else if !clean {
            self.push(field, "must not contain control characters");
        }
        clean
    }

    /// A required id (a UUID string).
    pub fn id(&mut self, field: &str, input: &str) -> Option<Uuid> {
        if !self.required(field, input) {
            return None;
        }
        let id = Uuid::try_parse(input).ok();
        if id.is_none() {
            self.push(field, "must be a UUID");
        }
        id
    }

    /// A required id as the domain's type for it (an `echo_ids` newtype such as `UserId`),
    /// checked like [`Check::id`]: the boundary parses each id once, into its own kind.
    pub fn id_of<T: From<Uuid>>(&mut self, field: &str, input: &str) -> Option<T> {
        self.id(field, input).map(T::from)
    }

    /// The paths of a required, non-empty `update_mask` (DESIGN §4: updates take a FieldMask),
    /// each one of `allowed`, duplicates folded; the field is `update_mask` (missing) or
    /// `update_mask.paths[i]` (unknown path).
    pub fn mask(&mut self, mask: Option<prost_types::FieldMask>, allowed: &[&str]) -> Vec<String> {
        let paths = mask.map(|m| m.paths).unwrap_or_default();
        if paths.is_empty() {
            let names = allowed.join(", ");
            self.push(
                "update_mask",
                format!("is required: name the fields to change ({names})"),
            );
        }
        let mut known = Vec::new();
        for (index, path) in paths.into_iter().enumerate() {
            if !allowed.contains(&path.as_str()) {
                let names = allowed.join(", ");
                self.push(
                    format!("update_mask.paths[{index}]"),
                    format!("unknown path `{path}`; allowed: {names}"),
                );
            } else if !known.contains(&path) {
                known.push(path);
            }
        }
        known
    }

    /// True when nothing was recorded so far.
    pub fn is_clean(&self) -> bool {
        self.0.is_empty()
    }

    /// Ok when every field was well formed; otherwise INVALID_ARGUMENT listing them all.
    pub fn finish(self) -> Result<(), Failure> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Failure::InvalidArgument(self.0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An id newtype, as `echo_ids` defines them.
    #[derive(Debug, PartialEq)]
    struct Typed(Uuid);

    impl From<Uuid> for Typed {
        fn from(id: Uuid) -> Self {
            Self(id)
        }
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let mut check = Check::new();
        assert_eq!(check.text("name", "  ada  ", 10, true), "ada");
        check.text("about", "a\u{7}b", 10, false);
        check.text("title", "", 10, true);
        check.text("alias", "x".repeat(11).as_str(), 10, false);
        assert_eq!(check.id("user_id", "nope"), None);
        assert!(check.id("other_id", &Uuid::now_v7().to_string()).is_some());
        let typed = Uuid::now_v7();
        assert_eq!(
            check.id_of::<Typed>("typed_id", &typed.to_string()),
            Some(Typed(typed))
        );
        assert_eq!(check.id_of::<Typed>("typed_ids[0]", "{}"), None);
        let Err(Failure::InvalidArgument(violations)) = check.finish() else {
            panic!("expected violations");
        };
        let fields: Vec<_> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            fields,
            ["about", "title", "alias", "user_id", "typed_ids[0]"]
        );
    }

    #[test]
    fn printable_text_refuses_nul_and_escapes_but_multiline_keeps_line_breaks() {
        let mut check = Check::new();
        assert!(check.printable("a", "tab\tand\r\nbreak", true));
        assert!(check.printable("b", "plain ünïcödé 👋", false));
        assert!(check.is_clean());
        assert!(!check.printable("c", "a\u{0}b", true));
        assert!(!check.printable("d", "\u{1b}[31m", true));
        assert!(!check.printable("e", "a\u{7f}", true));
        assert!(!check.printable("f", "a\u{85}", true));
        assert!(!check.printable("g", "two\nlines", false));
        check.text("h", "a\u{0}b", 10, false);
        let Err(Failure::InvalidArgument(violations)) = check.finish() else {
            panic!("expected violations");
        };
        let fields: Vec<_> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["c", "d", "e", "f", "g", "h"]);
    }
}
