//! The per-app debug console feed: what happens on an app's connections (connects,
//! disconnects, subscriptions, API and client events, errors), offered live to whoever watches
//! it in the admin panel.
//!
//! Nobody watching must cost nothing: the broadcast channel is created on the first watch, and
//! every emit first checks for a receiver before building (or serialising) anything.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use shared::admin::{DebugEvent, DebugKind};
use tokio::sync::broadcast;

/// Entries a slow watcher may fall behind by before it is told that some were skipped.
const BACKLOG: usize = 512;

#[derive(Default)]
struct Inner {
    /// Open watchers. Checked on every emit; an atomic load, where the broadcast channel's own
    /// receiver count would take its lock.
    watchers: AtomicUsize,
    tx: OnceLock<broadcast::Sender<Arc<str>>>,
}

/// One app's feed; cheap to clone (sessions, the supervisor and the HTTP handlers share it).
#[derive(Clone, Default)]
pub struct DebugFeed(Arc<Inner>);

impl DebugFeed {
    /// Whether anyone watches right now.
    #[inline]
    pub fn watched(&self) -> bool {
        self.0.watchers.load(Ordering::Relaxed) > 0
    }

    /// Sends an entry to the watchers; `fill` runs only if there are any.
    #[inline]
    pub fn emit(&self, kind: DebugKind, fill: impl FnOnce(&mut DebugEvent)) {
        if !self.watched() {
            return;
        }
        let Some(tx) = self.0.tx.get() else {
            return;
        };
        let mut event = DebugEvent::new(kind, now_ms());
        fill(&mut event);
        if let Ok(json) = serde_json::to_string(&event) {
            // An error means the last watcher left meanwhile: nothing to do.
            let _ = tx.send(json.into());
        }
    }

    /// A new watcher: receives every entry emitted from now on, as JSON, until dropped.
    pub fn watch(&self) -> Watcher {
        let rx = self
            .0
            .tx
            .get_or_init(|| broadcast::channel(BACKLOG).0)
            .subscribe();
        self.0.watchers.fetch_add(1, Ordering::Relaxed);
        Watcher {
            rx,
            feed: self.0.clone(),
        }
    }
}

/// One open watch of a feed.
pub struct Watcher {
    rx: broadcast::Receiver<Arc<str>>,
    feed: Arc<Inner>,
}

impl Watcher {
    /// The next entry as JSON; `Lagged` says how many were skipped for a slow watcher.
    pub async fn recv(&mut self) -> Result<Arc<str>, broadcast::error::RecvError> {
        self.rx.recv().await
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.feed.watchers.fetch_sub(1, Ordering::Relaxed);
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emits_only_while_watched() {
        let feed = DebugFeed::default();
        let mut built = false;
        feed.emit(DebugKind::Connection, |_| built = true);
        assert!(!built, "nothing is built before anyone watches");
        assert!(!feed.watched());

        let mut rx = feed.watch();
        assert!(feed.watched());
        feed.emit(DebugKind::Subscribed, |e| {
            e.socket_id = Some("1.2".into());
            e.channel = Some("news".into());
        });
        let json = rx.rx.try_recv().expect("an entry");
        let event: DebugEvent = serde_json::from_str(&json).unwrap();
        assert_eq!(event.kind, DebugKind::Subscribed);
        assert_eq!(event.channel.as_deref(), Some("news"));

        drop(rx);
        assert!(!feed.watched());
        let mut built = false;
        feed.emit(DebugKind::Connection, |_| built = true);
        assert!(!built, "nothing is built after the last watcher left");
    }
}
