//! The targets one `echo` process can run (the "single binary, many targets" pattern).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One deployable unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// AuthService: accounts, OTP, tokens, sessions.
    Auth,
    /// UserService: profiles, contacts, blocking, privacy.
    User,
    /// MessageService: conversations, messages, live delivery.
    Message,
    /// PresenceService: online state and typing.
    Presence,
    /// NotificationService: inbox and push.
    Notification,
    /// The public edge: gRPC + grpc-web, CORS, reflection, forwarding.
    Edge,
}

impl Target {
    /// Every service target (not the edge), in start-up order.
    pub const SERVICES: [Target; 5] = [
        Target::Auth,
        Target::User,
        Target::Message,
        Target::Presence,
        Target::Notification,
    ];

    /// The lowercase name used on the command line, in schemas and in file names.
    pub fn name(self) -> &'static str {
        match self {
            Target::Auth => "auth",
            Target::User => "user",
            Target::Message => "message",
            Target::Presence => "presence",
            Target::Notification => "notification",
            Target::Edge => "edge",
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Target {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let all = [Target::Edge].into_iter().chain(Target::SERVICES);
        all.into_iter().find(|t| t.name() == s.trim()).ok_or_else(|| {
            format!(
                "unknown target `{s}`; expected all, auth, user, message, presence, notification \
                 or edge"
            )
        })
    }
}

/// The set of targets a process runs: `all`, or a comma-separated list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Targets(Vec<Target>);

impl Targets {
    /// The whole mesh: every service and the edge.
    pub fn all() -> Self {
        let mut all = Target::SERVICES.to_vec();
        all.push(Target::Edge);
        Targets(all)
    }

    /// The targets in start-up order.
    pub fn iter(&self) -> impl Iterator<Item = Target> + '_ {
        self.0.iter().copied()
    }

    /// Whether `target` runs in this process.
    pub fn contains(&self, target: Target) -> bool {
        self.0.contains(&target)
    }

    /// True when this process runs every target (so in-process backends are enough).
    pub fn is_whole_mesh(&self) -> bool {
        Targets::all().0.iter().all(|t| self.0.contains(t))
    }

    /// True when at least one service (not only the edge) runs here.
    pub fn has_any_service(&self) -> bool {
        self.0.iter().any(|t| *t != Target::Edge)
    }
}

impl fmt::Display for Targets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_whole_mesh() {
            return f.write_str("all");
        }
        let names: Vec<_> = self.0.iter().map(|t| t.name()).collect();
        f.write_str(&names.join(","))
    }
}

impl FromStr for Targets {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim() == "all" {
            return Ok(Targets::all());
        }
        let mut targets = s
            .split(',')
            .map(Target::from_str)
            .collect::<Result<Vec<_>, _>>()?;
        targets.sort();
        targets.dedup();
        if targets.is_empty() {
            return Err("no target given".into());
        }
        Ok(Targets(targets))
    }
}

impl Serialize for Targets {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Targets {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}
