//! The admin API (echo.admin.v1.AdminService, docs/admin.md): where the operator credentials
//! come from. Operators present `authorization: Bearer <token>`; the file lists, per operator,
//! the SHA-256 of their token, so the file holds no secret an attacker could replay.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The admin API's settings.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminSettings {
    /// A file of operator credentials, one `<operator-name> <sha256-hex-of-token>` per line
    /// (`#` starts a comment). Without it the AdminService answers UNAUTHENTICATED to every
    /// call. Read at start; a malformed line refuses the start.
    pub operator_tokens_file: Option<PathBuf>,
    /// MessageService's internal port (`http://host:port`), which the admin API calls for the
    /// report queue and purges when the process that runs auth does not also run message (in
    /// one process the admin API uses its own internal port). Without either, those RPCs
    /// answer UNAVAILABLE.
    pub message_internal_url: Option<String>,
}

/// One operator's credential as the file lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorToken {
    /// The operator's name, written to the audit log: 1-64 of `A-Z a-z 0-9 . _ @ -`.
    pub name: String,
    /// SHA-256 of the operator's token.
    pub sha256: [u8; 32],
}

/// SHA-256 of the operator token the test kit and the examples use (`echo-testkit`'s
/// `OPERATOR_TOKEN`): published, so production refuses a file that lists it.
pub const DEVELOPMENT_OPERATOR_TOKEN_SHA256: &str =
    "66e5b6411d26cdc6102e7177a1dcae931dd932547697620602bf41362e26a433";

impl AdminSettings {
    /// The operator credentials of the configured file (none without one). `production`
    /// also refuses an empty file and the published development token.
    pub fn operator_tokens(&self, production: bool) -> Result<Vec<OperatorToken>, String> {
        let Some(path) = &self.operator_tokens_file else {
            return Ok(Vec::new());
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("admin.operator_tokens_file {}: {e}", path.display()))?;
        parse_operator_tokens(&text, production).map_err(|e| describe(path, &e))
    }

    /// Why production refuses these settings for `target`, if it does: the process that runs
    /// auth serves the admin API, and a configured operator file must hold only well-formed
    /// entries, at least one, none of them the published development token. (No file is
    /// allowed: the admin API then refuses every call.)
    pub fn production_problem(&self, target: &crate::Targets) -> Option<String> {
        if !target.contains(crate::Target::Auth) {
            return None;
        }
        self.operator_tokens(true).err()
    }
}

fn describe(path: &Path, problem: &str) -> String {
    format!("admin.operator_tokens_file {}: {problem}", path.display())
}

/// Parse an operator token file (see [`AdminSettings::operator_tokens_file`]).
pub fn parse_operator_tokens(text: &str, production: bool) -> Result<Vec<OperatorToken>, String> {
    let mut tokens: Vec<OperatorToken> = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.is_empty() {
            continue;
        }
        let at = number + 1;
        let mut words = line.split_whitespace();
        let (Some(name), Some(hash), None) = (words.next(), words.next(), words.next()) else {
            return Err(format!(
                "line {at}: expected `<operator-name> <sha256-hex-of-token>`"
            ));
        };
        let name_ok = (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._@-".contains(&b));
        if !name_ok {
            return Err(format!(
                "line {at}: the operator name must be 1-64 of A-Z a-z 0-9 . _ @ -"
            ));
        }
        let Some(sha256) = parse_sha256(hash) else {
            return Err(format!(
                "line {at}: `{hash}` is not a SHA-256 in hex (64 hex digits)"
            ));
        };
        if production && hash.eq_ignore_ascii_case(DEVELOPMENT_OPERATOR_TOKEN_SHA256) {
            return Err(format!(
                "line {at}: lists the published development operator token; generate one \
                 (e.g. `openssl rand -base64 32 | tr '+/' '-_' | tr -d '='`)"
            ));
        }
        if tokens.iter().any(|t| t.name == name) {
            return Err(format!("line {at}: operator `{name}` is listed twice"));
        }
        if tokens.iter().any(|t| t.sha256 == sha256) {
            return Err(format!("line {at}: the same token is listed twice"));
        }
        tokens.push(OperatorToken {
            name: name.to_owned(),
            sha256,
        });
    }
    if production && tokens.is_empty() {
        return Err("lists no operator".into());
    }
    Ok(tokens)
}

fn parse_sha256(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "a3f1c2d4e5b6a7980112233445566778899aabbccddeeff00112233445566778";

    #[test]
    fn parses_names_and_hashes_and_refuses_malformed_lines() {
        let text = format!("# operators\nalice {HASH}  # on call\n\n");
        let tokens = parse_operator_tokens(&text, true).unwrap();
        assert_eq!(tokens.len(), 1);
        assert_eq!(tokens[0].name, "alice");
        assert_eq!(tokens[0].sha256[0], 0xa3);
        for bad in [
            "alice".to_owned(),
            format!("alice {HASH} extra"),
            format!("alice {}", &HASH[..63]),
            format!("alice {}g", &HASH[..63]),
            format!("al ice {HASH}"),
            format!("alice {HASH}\nalice {}", HASH.replace('a', "b")),
            format!("alice {HASH}\nbob {HASH}"),
        ] {
            assert!(parse_operator_tokens(&bad, false).is_err(), "{bad}");
        }
    }

    #[test]
    fn production_refuses_an_empty_file_and_the_development_token() {
        assert!(
            parse_operator_tokens("# nobody\n", false)
                .unwrap()
                .is_empty()
        );
        assert!(parse_operator_tokens("# nobody\n", true).is_err());
        let dev = format!("dev {DEVELOPMENT_OPERATOR_TOKEN_SHA256}");
        assert!(parse_operator_tokens(&dev, false).is_ok());
        assert!(parse_operator_tokens(&dev, true).is_err());
    }
}
