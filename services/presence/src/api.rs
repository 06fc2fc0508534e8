//! PresenceService handlers: parse and check the request, take the caller from the request
//! extensions, call the tracker or the watchers, map the result (STYLE 4).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use echo_authn::{Caller, Revocations};
use echo_cache::{Cache, Rule};
use echo_ids::UserId;
use echo_proto::echo::presence::v1 as pb;
use echo_proto::echo::presence::v1::presence_service_server::PresenceService;
use echo_runtime::{Check, Failure};
use tonic::{Request, Response, Status};

use crate::error::PresenceError;
use crate::hints::timestamp;
use crate::status::{Activity, Manual, ManualStatus};
use crate::tracker::Tracker;
use crate::visibility::may_see;
use crate::watch::stream::{Lease, StreamParts, WatchStream, respond};
use crate::watch::{Watchers, presence_pb};

/// Heartbeats per device: a burst of 2 (a retry after a lost response passes), then 1 a second.
/// The state store keeps the buckets and takes the token in the heartbeat's own round trip.
const HEARTBEAT: Rule = Rule::per("presence.heartbeat", 2, Duration::from_secs(2));
/// Most ids one GetPresence reads.
pub const MAX_GET: usize = 100;
/// Most ids one WatchPresence watches.
pub const MAX_WATCH: usize = 500;
/// Shortest and longest `clear_after`.
const CLEAR_AFTER: (Duration, Duration) =
    (Duration::from_secs(60), Duration::from_secs(7 * 24 * 3600));

/// The PresenceService handlers.
#[derive(Clone)]
pub struct PresenceApi {
    tracker: Tracker,
    watchers: Watchers,
    cache: Arc<dyn Cache>,
    revocations: Option<Revocations>,
}

impl PresenceApi {
    /// Handlers over one instance's tracker and watchers.
    pub fn new(
        tracker: Tracker,
        watchers: Watchers,
        cache: Arc<dyn Cache>,
        revocations: Option<Revocations>,
    ) -> Self {
        Self {
            tracker,
            watchers,
            cache,
            revocations,
        }
    }
}

fn fail(error: PresenceError) -> Status {
    error.into()
}

/// Distinct ids from `input`, 1..=`max` of them, each a UUID; every bad one is named. A list
/// over the limit is refused before its elements are looked at.
pub fn user_ids(input: &[String], max: usize) -> Result<Vec<UserId>, Status> {
    if input.is_empty() {
        return Err(Failure::invalid("user_ids", "at least one user id is required").into());
    }
    if input.len() > max {
        return Err(Failure::invalid("user_ids", format!("at most {max} user ids")).into());
    }
    let mut check = Check::new();
    let mut seen = HashSet::new();
    let mut ids = Vec::with_capacity(input.len());
    for (i, text) in input.iter().enumerate() {
        if let Some(id) = check.id_of::<UserId>(&format!("user_ids[{i}]"), text)
            && seen.insert(id)
        {
            ids.push(id);
        }
    }
    check.finish()?;
    Ok(ids)
}

fn heartbeat_activity(status: i32) -> Result<Activity, Status> {
    match pb::PresenceStatus::try_from(status) {
        Ok(pb::PresenceStatus::Unspecified | pb::PresenceStatus::Online) => Ok(Activity::Online),
        Ok(pb::PresenceStatus::Away) => Ok(Activity::Away),
        _ => Err(Failure::invalid("status", "a heartbeat reports ONLINE or AWAY").into()),
    }
}

/// The manual status a SetStatus asks for (`None`: clear), with its end.
fn manual_status(request: &pb::SetStatusRequest) -> Result<Option<ManualStatus>, Status> {
    let mut check = Check::new();
    let status = match pb::PresenceStatus::try_from(request.status) {
        Ok(pb::PresenceStatus::Online) => None,
        Ok(pb::PresenceStatus::Away) => Some(Manual::Away),
        Ok(pb::PresenceStatus::Dnd) => Some(Manual::Dnd),
        Ok(pb::PresenceStatus::Invisible) => Some(Manual::Invisible),
        _ => {
            check.push(
                "status",
                "must be AWAY, DND or INVISIBLE, or ONLINE to clear the manual status",
            );
            None
        }
    };
    let mut clears_at = None;
    if let Some(after) = request.clear_after {
        // Negative parts never reach prost-types' conversion: it negates them, which overflows
        // (a panic in debug builds) for i64::MIN seconds.
        let after = (after.seconds >= 0 && after.nanos >= 0).then(|| Duration::try_from(after));
        match after {
            Some(Ok(after)) if (CLEAR_AFTER.0..=CLEAR_AFTER.1).contains(&after) => {
                clears_at = Some(Utc::now() + after);
            }
            _ => check.push("clear_after", "must be between 1 minute and 7 days"),
        }
        if status.is_none() && check.is_clean() {
            check.push(
                "clear_after",
                "only AWAY, DND and INVISIBLE clear themselves",
            );
        }
    }
    check.finish()?;
    Ok(status.map(|status| ManualStatus { status, clears_at }))
}

fn duration(d: Duration) -> Option<prost_types::Duration> {
    prost_types::Duration::try_from(d).ok()
}

#[tonic::async_trait]
impl PresenceService for PresenceApi {
    async fn heartbeat(
        &self,
        request: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatResponse>, Status> {
        let caller = Caller::of(&request).map_err(Failure::from)?;
        let activity = heartbeat_activity(request.get_ref().status)?;
        // The limit is taken by the state store in the refresh's own round trip.
        self.tracker
            .heartbeat(caller.user_id, caller.device_id, activity, HEARTBEAT.limit)
            .await
            .map_err(fail)?;
        let settings = &self.tracker.settings;
        Ok(Response::new(pb::HeartbeatResponse {
            next_heartbeat_in: duration(settings.heartbeat_interval),
            ttl: duration(settings.ttl),
        }))
    }

    async fn set_status(
        &self,
        request: Request<pb::SetStatusRequest>,
    ) -> Result<Response<pb::SetStatusResponse>, Status> {
        let caller = Caller::of(&request).map_err(Failure::from)?.user_id;
        let manual = manual_status(request.get_ref())?;
        let update = self
            .tracker
            .set_manual(caller, manual)
            .await
            .map_err(fail)?;
        Ok(Response::new(pb::SetStatusResponse {
            presence: Some(presence_pb(caller, update.after.view())),
            clears_at: manual.and_then(|m| m.clears_at).map(timestamp),
        }))
    }

    async fn get_presence(
        &self,
        request: Request<pb::GetPresenceRequest>,
    ) -> Result<Response<pb::GetPresenceResponse>, Status> {
        let caller = Caller::of(&request).map_err(Failure::from)?.user_id;
        let ids = user_ids(&request.get_ref().user_ids, MAX_GET)?;
        let (relations, states) = tokio::join!(
            self.tracker.store.relations(caller, &ids),
            self.tracker.read(&ids)
        );
        let relations = relations.map_err(|e| fail(e.into()))?;
        let states = states.map_err(fail)?;
        let presences = states
            .into_iter()
            .map(|state| {
                let target = state.user_id;
                let relation = relations.get(&target).copied().unwrap_or_default();
                if may_see(caller, target, &relation) {
                    presence_pb(target, state.view())
                } else {
                    pb::Presence {
                        user_id: target.to_string(),
                        restricted: true,
                        ..pb::Presence::default()
                    }
                }
            })
            .collect();
        Ok(Response::new(pb::GetPresenceResponse { presences }))
    }

    async fn watch_presence(
        &self,
        request: Request<pb::WatchPresenceRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        let caller = Caller::of(&request).map_err(Failure::from)?;
        let ids = user_ids(&request.get_ref().user_ids, MAX_WATCH)?;
        let user = caller.user_id;
        let max = self.tracker.settings.max_watch_streams;
        let lease = Lease::take(self.cache.clone(), user, max)
            .await
            .map_err(fail)?;
        let opened = self.watchers.open(user, ids).await.map_err(fail)?;
        let revoked: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> =
            match &self.revocations {
                Some(revocations) => Box::pin(revocations.revoked_signal(caller.session_id)),
                None => Box::pin(std::future::pending()),
            };
        let parts = StreamParts {
            caller,
            revoked,
            lease,
        };
        Ok(Response::new(respond(self.watchers.clone(), opened, parts)))
    }
}
