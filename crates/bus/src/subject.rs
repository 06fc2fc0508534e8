//! Subjects (`echo.<domain>.<event>.<key>`), their prefix, and the streams that hold them.

/// `echo.auth.user_registered.x` → `auth`.
pub fn domain(subject: &str) -> Option<&str> {
    let mut tokens = subject.split('.');
    (tokens.next() == Some("echo"))
        .then(|| tokens.next())
        .flatten()
        .filter(|d| !d.is_empty())
}

/// The JetStream stream holding a domain's events: `ECHO_AUTH`, with the prefix in front.
pub fn stream_name(prefix: &str, domain: &str) -> String {
    let prefix: String = prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("{prefix}ECHO_{}", domain.to_ascii_uppercase())
}

/// Ephemeral subjects live under `echo.live.>`, which no stream captures (DESIGN §7).
pub const LIVE_DOMAIN: &str = "live";

/// Dead letters of consumer `name` go to `echo.dlq.<name>` (stream `ECHO_DLQ`).
pub fn dead_letter_subject(consumer: &str) -> String {
    format!("echo.dlq.{}", sanitize_token(consumer))
}

/// Make `name` a single subject token / consumer name (no dots, spaces or wildcards).
pub fn sanitize_token(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// NATS subject matching: `*` matches one token, `>` one or more trailing tokens.
pub fn matches(filter: &str, subject: &str) -> bool {
    let mut subject_tokens = subject.split('.');
    for pattern in filter.split('.') {
        match (pattern, subject_tokens.next()) {
            (">", Some(_)) => return true,
            ("*", Some(_)) => {}
            (literal, Some(token)) if literal == token => {}
            _ => return false,
        }
    }
    subject_tokens.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_follow_nats_rules() {
        assert!(matches("echo.auth.>", "echo.auth.user_registered.1"));
        assert!(!matches("echo.auth.>", "echo.auth"));
        assert!(matches("echo.*.x", "echo.auth.x"));
        assert!(!matches("echo.*.x", "echo.auth.x.y"));
        assert!(!matches("echo.auth.>", "echo.user.blocked.1"));
        assert!(matches("echo.auth.a", "echo.auth.a"));
    }

    #[test]
    fn domains_and_streams() {
        assert_eq!(domain("echo.message.created.c1"), Some("message"));
        assert_eq!(domain("other.x"), None);
        assert_eq!(stream_name("t_ab12.", "auth"), "T_AB12_ECHO_AUTH");
        assert_eq!(stream_name("", "message"), "ECHO_MESSAGE");
    }
}
