//! The presence rules (proto `echo.presence.v1`, spec §A): what a device reports, what a user
//! sets, and what an observer sees. Pure functions over [`UserState`]; no I/O.

use std::time::Duration;

use chrono::{DateTime, Utc};
use echo_ids::{DeviceId, UserId};

/// What a device reports with each heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Activity {
    /// Foreground, in use.
    Online,
    /// Idle or in the background.
    Away,
}

/// A user's manual status (SetStatus), user-wide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Manual {
    /// Shown as AWAY whatever the devices report.
    Away,
    /// Do not disturb: shown as DND; pushes go out silently.
    Dnd,
    /// Shown as OFFLINE; `last_seen` freezes.
    Invisible,
}

/// What an observer may be shown (before visibility): never INVISIBLE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Observed {
    /// Some device is ONLINE and no manual status overrides it.
    Online,
    /// Every live device is AWAY, or the user set AWAY.
    Away,
    /// The user set DND (and has a live device).
    Dnd,
    /// No live device, or invisible.
    Offline,
}

/// A manual status with its optional automatic end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ManualStatus {
    /// The status.
    pub status: Manual,
    /// When it clears itself, if it does.
    pub clears_at: Option<DateTime<Utc>>,
}

/// One device's live entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceEntry {
    /// The device.
    pub device_id: DeviceId,
    /// Its last reported activity.
    pub activity: Activity,
    /// When the entry expires unless refreshed.
    pub expires_at: DateTime<Utc>,
}

/// A user's whole presence state as the state store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserState {
    /// The user.
    pub user_id: UserId,
    /// Live device entries (an expired entry is removed by the sweeper, never shown as live
    /// past it: the sweeper is the one place that decides expiry).
    pub devices: Vec<DeviceEntry>,
    /// The manual status; `None` when none is set.
    pub manual: Option<ManualStatus>,
    /// The last refresh while visible (not invisible); `None` when never seen.
    pub last_seen: Option<DateTime<Utc>>,
    /// Grows with every change of this user's state (see `PresenceChanged.version`).
    pub version: u64,
}

/// The observer-independent view of a user: what a permitted observer sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct View {
    /// The observed status.
    pub status: Observed,
    /// Set only when OFFLINE and the user was ever seen.
    pub last_seen: Option<DateTime<Utc>>,
}

impl UserState {
    /// `user` with nothing live, nothing set and never seen (version 0).
    pub fn empty(user: UserId) -> Self {
        Self {
            user_id: user,
            devices: Vec::new(),
            manual: None,
            last_seen: None,
            version: 0,
        }
    }

    /// The rules of `presence.proto`: no live device → OFFLINE; INVISIBLE → OFFLINE with the
    /// frozen `last_seen`; AWAY or DND → that; else ONLINE if any device is, else AWAY.
    pub fn view(&self) -> View {
        let status = if self.devices.is_empty() {
            Observed::Offline
        } else {
            match self.manual.map(|m| m.status) {
                Some(Manual::Invisible) => Observed::Offline,
                Some(Manual::Away) => Observed::Away,
                Some(Manual::Dnd) => Observed::Dnd,
                None if self.devices.iter().any(|d| d.activity == Activity::Online) => {
                    Observed::Online
                }
                None => Observed::Away,
            }
        };
        View {
            status,
            last_seen: self.last_seen.filter(|_| status == Observed::Offline),
        }
    }

    /// True while the manual status is INVISIBLE (refreshes then leave `last_seen` alone).
    pub fn invisible(&self) -> bool {
        matches!(
            self.manual,
            Some(ManualStatus {
                status: Manual::Invisible,
                ..
            })
        )
    }

    /// Devices whose last report is ONLINE (what the notification service asks for).
    pub fn online_devices(&self) -> impl Iterator<Item = DeviceId> + '_ {
        self.devices
            .iter()
            .filter(|d| d.activity == Activity::Online)
            .map(|d| d.device_id)
    }
}

/// How often devices heartbeat and how long an entry lives (spec §A2: 30 s and 75 s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// Told to clients as `next_heartbeat_in`.
    pub interval: Duration,
    /// A device entry's time to live after each refresh.
    pub ttl: Duration,
    /// How long an entry lives after its Subscribe stream closed cleanly.
    pub after_stream_closed: Duration,
}

/// The change a write made: the user's state before and after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    /// Before the write.
    pub before: UserState,
    /// After the write.
    pub after: UserState,
}

impl Update {
    /// True when observers would see something different.
    pub fn changed(&self) -> bool {
        self.before.view() != self.after.view()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(n: u128, activity: Activity) -> DeviceEntry {
        DeviceEntry {
            device_id: uuid::Uuid::from_u128(n).into(),
            activity,
            expires_at: Utc::now(),
        }
    }

    fn state(devices: Vec<DeviceEntry>, manual: Option<Manual>) -> UserState {
        UserState {
            user_id: uuid::Uuid::from_u128(1).into(),
            devices,
            manual: manual.map(|status| ManualStatus {
                status,
                clears_at: None,
            }),
            last_seen: Some(DateTime::from_timestamp(1_700_000_000, 0).unwrap()),
            version: 1,
        }
    }

    /// Every device mix × every manual status, against the table in presence.proto.
    #[test]
    fn aggregation_follows_the_table() {
        use Activity::{Away as A, Online as O};
        let mixes: [(&str, Vec<DeviceEntry>); 4] = [
            ("none", vec![]),
            ("online", vec![device(1, O)]),
            ("away", vec![device(1, A)]),
            ("online+away", vec![device(1, A), device(2, O)]),
        ];
        let manuals = [
            None,
            Some(Manual::Away),
            Some(Manual::Dnd),
            Some(Manual::Invisible),
        ];
        let expected = [
            // none, away, dnd, invisible
            [
                Observed::Offline,
                Observed::Offline,
                Observed::Offline,
                Observed::Offline,
            ],
            [
                Observed::Online,
                Observed::Away,
                Observed::Dnd,
                Observed::Offline,
            ],
            [
                Observed::Away,
                Observed::Away,
                Observed::Dnd,
                Observed::Offline,
            ],
            [
                Observed::Online,
                Observed::Away,
                Observed::Dnd,
                Observed::Offline,
            ],
        ];
        for ((name, devices), row) in mixes.iter().zip(expected) {
            for (manual, want) in manuals.iter().zip(row) {
                let view = state(devices.clone(), *manual).view();
                assert_eq!(view.status, want, "{name} with {manual:?}");
                assert_eq!(
                    view.last_seen.is_some(),
                    want == Observed::Offline,
                    "last_seen only when offline: {name} with {manual:?}"
                );
            }
        }
    }

    #[test]
    fn never_seen_users_have_no_last_seen() {
        let mut never = state(vec![], None);
        never.last_seen = None;
        assert_eq!(
            never.view(),
            View {
                status: Observed::Offline,
                last_seen: None
            }
        );
    }

    #[test]
    fn only_online_devices_count_for_delivery() {
        let user = state(
            vec![device(1, Activity::Away), device(2, Activity::Online)],
            None,
        );
        assert_eq!(
            user.online_devices().collect::<Vec<_>>(),
            vec![DeviceId::from(uuid::Uuid::from_u128(2))]
        );
    }
}
