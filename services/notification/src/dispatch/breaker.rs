//! Spec §B3's circuit breaker: a push platform that refused our credentials (after the
//! provider's one re-mint) gets no request until its pause ends.

use std::collections::HashMap;
use std::time::Duration;

use crate::tokens::Platform;

/// The longest a platform stays paused for refused credentials before the next try.
pub const MAX_CREDENTIAL_PAUSE: Duration = Duration::from_secs(300);

/// Per platform, the circuit breaker of spec §B3: a provider that refused our credentials
/// (after its one re-mint) gets no request until the pause ends; then one batch tries again.
#[derive(Default)]
pub(super) struct Breakers {
    open: std::sync::Mutex<HashMap<Platform, (std::time::Instant, Duration)>>,
}

impl Breakers {
    /// Until when `platform` is paused, if it is.
    pub(super) fn paused(&self, platform: Platform) -> Option<std::time::Instant> {
        let open = self.open.lock().expect("breakers");
        open.get(&platform)
            .map(|(until, _)| *until)
            .filter(|until| *until > std::time::Instant::now())
    }

    /// `platform` refused our credentials: pause it, twice as long as last time.
    pub(super) fn trip(&self, platform: Platform, first: Duration) -> Duration {
        let mut open = self.open.lock().expect("breakers");
        let now = std::time::Instant::now();
        let pause = match open.get(&platform) {
            Some((until, _)) if *until > now => return until.duration_since(now),
            Some((_, last)) => (*last * 2).min(MAX_CREDENTIAL_PAUSE),
            None => first,
        };
        open.insert(platform, (now + pause, pause));
        pause
    }

    /// `platform` answered with our credentials accepted: closed again.
    pub(super) fn reset(&self, platform: Platform) {
        self.open.lock().expect("breakers").remove(&platform);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pause doubles while the platform keeps refusing, up to the cap; another platform is
    /// not paused; an accepted request closes the breaker (the next pause starts over).
    #[test]
    fn credential_pauses_double_up_to_the_cap_and_reset() {
        let breakers = Breakers::default();
        let first = Duration::from_millis(2);
        assert_eq!(breakers.trip(Platform::Fcm, first), first);
        assert!(breakers.paused(Platform::Fcm).is_some());
        assert!(breakers.paused(Platform::Apns).is_none());
        // Refused again while paused (a request already in flight): the same pause.
        assert!(breakers.trip(Platform::Fcm, first) <= first);
        std::thread::sleep(Duration::from_millis(5));
        assert!(breakers.paused(Platform::Fcm).is_none(), "the pause ended");
        assert_eq!(breakers.trip(Platform::Fcm, first), first * 2);
        std::thread::sleep(Duration::from_millis(10));
        assert_eq!(breakers.trip(Platform::Fcm, first), first * 4);
        breakers.reset(Platform::Fcm);
        assert!(breakers.paused(Platform::Fcm).is_none());
        assert_eq!(breakers.trip(Platform::Fcm, first), first);

        let long = MAX_CREDENTIAL_PAUSE - Duration::from_millis(1);
        let breakers = Breakers::default();
        breakers.trip(Platform::Apns, long);
        // Force the pause over without waiting it out.
        breakers
            .open
            .lock()
            .unwrap()
            .get_mut(&Platform::Apns)
            .unwrap()
            .0 = std::time::Instant::now();
        assert_eq!(breakers.trip(Platform::Apns, long), MAX_CREDENTIAL_PAUSE);
    }
}
