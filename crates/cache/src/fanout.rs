//! In-process fan-out from a channel name to its local subscribers.
//!
//! The memory backend publishes straight into it; the Redis backend feeds it from its one
//! pub/sub connection, so N local subscribers of a channel cost one Redis subscription.

use std::collections::HashMap;
use std::sync::Mutex;

use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// Messages a subscriber may fall behind by before new ones are dropped for it. Pub/sub is
/// at-most-once on Redis too; the bound keeps one stuck reader from growing memory forever.
const SUBSCRIBER_BUFFER: usize = 1024;

/// Channel name → senders of the local subscribers.
#[derive(Default)]
pub(crate) struct Fanout {
    channels: Mutex<HashMap<String, Vec<mpsc::Sender<Vec<u8>>>>>,
}

impl Fanout {
    /// Adds a subscriber to `channel`; the flag says whether it is the channel's first.
    pub(crate) fn subscribe(&self, channel: &str) -> (BoxStream<'static, Vec<u8>>, bool) {
        let (tx, rx) = mpsc::channel(SUBSCRIBER_BUFFER);
        let mut channels = self.channels.lock().unwrap();
        let senders = channels.entry(channel.to_owned()).or_default();
        senders.retain(|s| !s.is_closed());
        let first = senders.is_empty();
        senders.push(tx);
        (ReceiverStream::new(rx).boxed(), first)
    }

    /// Drops `channel` if it has no live subscribers; true when it was dropped (or absent).
    /// Used to undo a subscription whose Redis SUBSCRIBE failed.
    pub(crate) fn forget_if_unused(&self, channel: &str) -> bool {
        let mut channels = self.channels.lock().unwrap();
        let unused = channels.get_mut(channel).is_none_or(|senders| {
            senders.retain(|s| !s.is_closed());
            senders.is_empty()
        });
        if unused {
            channels.remove(channel);
        }
        unused
    }

    /// Delivers `payload` to every live subscriber of `channel`; returns how many got it.
    /// Never blocks: it runs on the Redis connection's reader.
    pub(crate) fn dispatch(&self, channel: &str, payload: &[u8]) -> usize {
        let mut channels = self.channels.lock().unwrap();
        let Some(senders) = channels.get_mut(channel) else {
            return 0;
        };
        let mut delivered = 0;
        senders.retain(|tx| match tx.try_send(payload.to_vec()) {
            Ok(()) => {
                delivered += 1;
                true
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::warn!(channel, "cache subscriber lagging, message dropped");
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        });
        delivered
    }

    /// Removes channels whose subscribers have all gone and returns their names, so the Redis
    /// backend can UNSUBSCRIBE them.
    pub(crate) fn prune(&self) -> Vec<String> {
        let mut channels = self.channels.lock().unwrap();
        let mut gone = Vec::new();
        channels.retain(|name, senders| {
            senders.retain(|s| !s.is_closed());
            if senders.is_empty() {
                gone.push(name.clone());
            }
            !senders.is_empty()
        });
        gone
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn delivers_to_every_subscriber_of_a_channel_only() {
        let fanout = Fanout::default();
        let (mut a1, first) = fanout.subscribe("a");
        assert!(first);
        let (mut a2, first) = fanout.subscribe("a");
        assert!(!first);
        let (_b, _) = fanout.subscribe("b");
        assert_eq!(fanout.dispatch("a", b"hi"), 2);
        assert_eq!(a1.next().await.unwrap(), b"hi");
        assert_eq!(a2.next().await.unwrap(), b"hi");
        assert_eq!(fanout.dispatch("c", b"nobody"), 0);
    }

    #[tokio::test]
    async fn dropped_subscribers_are_pruned() {
        let fanout = Fanout::default();
        let (a, _) = fanout.subscribe("a");
        let (_b, _) = fanout.subscribe("b");
        drop(a);
        assert_eq!(fanout.prune(), vec!["a".to_owned()]);
        assert!(fanout.prune().is_empty());
        let (_a, first) = fanout.subscribe("a");
        assert!(first, "a channel resubscribed after pruning starts afresh");
    }
}
