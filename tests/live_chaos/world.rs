//! The chaos test's cast: users (the first GROUPS own one group each and watch it as
//! observers), their devices, the groups, what the test believes about membership, and the
//! problems the actors met.

use std::collections::BTreeSet;
use std::sync::Mutex;

use echo_proto::echo::message::v1 as pb;
use echo_testkit::{SignedIn, TestMesh};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use tonic::Code;

use crate::common::live::{group_of, other_device};
use crate::common::users::known_user;

/// Groups, each owned (and observed) by one of the first users.
pub const GROUPS: usize = 4;
/// Users in all (the OTP limit allows 20 sign-ups per client address an hour).
pub const USERS: usize = 16;
/// Users GROUPS..TWO_DEVICES have a second device.
pub const TWO_DEVICES: usize = 12;
/// Users from here on start in no group; the membership actors add them later.
pub const LATECOMERS: usize = 12;
/// Members each group starts with besides its owner.
pub const INITIAL_MEMBERS: usize = 5;

/// What the test believes about the groups. The calls race with each other, so this is a
/// guide for choosing actions, not the truth: the truth is the observers' logs.
#[derive(Debug, Default)]
pub struct Beliefs {
    /// Users believed to be members of each group.
    pub members: Vec<BTreeSet<usize>>,
    /// Users who left or were removed, candidates for coming back.
    pub gone: Vec<BTreeSet<usize>>,
    /// Messages sent to each group: (sender, message).
    pub messages: Vec<Vec<(usize, pb::Message)>>,
}

/// Everything the actors share.
pub struct World {
    /// The mesh.
    pub mesh: TestMesh,
    /// A second instance on the same PostgreSQL schemas, NATS and Redis prefixes, when the run
    /// is across instances: calls and resumes then go to either at random.
    pub sibling: Option<TestMesh>,
    /// Every user's first device.
    pub users: Vec<SignedIn>,
    /// Every subscribing device: (user, sign-in).
    pub devices: Vec<(usize, SignedIn)>,
    /// The groups, created once every device subscribed.
    pub groups: Vec<pb::Conversation>,
    /// What the test believes.
    pub beliefs: Mutex<Beliefs>,
    /// Calls that failed in a way no race explains.
    pub problems: Mutex<Vec<String>>,
}

impl World {
    /// Sign everyone up and in (users and their devices); groups come later.
    pub async fn cast(mesh: TestMesh) -> Self {
        let mut users = Vec::new();
        for _ in 0..USERS {
            users.push(known_user(&mesh).await);
        }
        let mut devices: Vec<(usize, SignedIn)> = users.iter().cloned().enumerate().collect();
        for (user, signed_in) in users.iter().enumerate().take(TWO_DEVICES).skip(GROUPS) {
            devices.push((user, other_device(&mesh, signed_in).await));
        }
        Self {
            mesh,
            sibling: None,
            users,
            devices,
            groups: Vec::new(),
            beliefs: Mutex::new(Beliefs::default()),
            problems: Mutex::new(Vec::new()),
        }
    }

    /// Create the groups: owner g with INITIAL_MEMBERS of the members, plus the next owner as
    /// an ordinary member (so owners can be removed from groups they do not own).
    pub async fn create_groups(&mut self, seed: u64) {
        let mut rng = StdRng::seed_from_u64(seed);
        let candidates: Vec<usize> = (GROUPS..LATECOMERS).collect();
        let mut beliefs = Beliefs::default();
        for owner in 0..GROUPS {
            let mut members: BTreeSet<usize> = candidates
                .choose_multiple(&mut rng, INITIAL_MEMBERS)
                .copied()
                .collect();
            members.insert((owner + 1) % GROUPS);
            let invited: Vec<&SignedIn> = members.iter().map(|m| &self.users[*m]).collect();
            let group = group_of(&self.mesh, &self.users[owner], &invited).await;
            self.groups.push(group);
            members.insert(owner);
            beliefs.members.push(members);
            beliefs.gone.push(BTreeSet::new());
            beliefs.messages.push(Vec::new());
        }
        *self.beliefs.lock().expect("beliefs") = beliefs;
    }

    /// The instances calls may go to: the mesh, and the sibling when there is one.
    pub fn instances(&self) -> Vec<&TestMesh> {
        std::iter::once(&self.mesh).chain(&self.sibling).collect()
    }

    /// An instance for the next call, at random, and its index.
    pub fn instance(&self, rng: &mut StdRng) -> (usize, &TestMesh) {
        let instances = self.instances();
        let n = rng.random_range(0..instances.len());
        (n, instances[n])
    }

    /// Record `result` of `what`: refusals a race explains are fine (a member removed a moment
    /// ago, a message deleted already, a rate limit), anything else is a problem.
    pub fn check<T>(&self, what: &str, result: Result<T, tonic::Status>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(status) if is_race(status.code()) => None,
            Err(status) => {
                self.problems
                    .lock()
                    .expect("problems")
                    .push(format!("{what}: {status:?}"));
                None
            }
        }
    }
}

/// Refusal codes that concurrent membership changes and deletions explain.
fn is_race(code: Code) -> bool {
    matches!(
        code,
        Code::NotFound
            | Code::PermissionDenied
            | Code::FailedPrecondition
            | Code::ResourceExhausted
            | Code::AlreadyExists
    )
}
