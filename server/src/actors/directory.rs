//! How the rest of the server reaches a running app: the [`Directory`] (app key and id →
//! [`AppHandle`]) and the handle itself.
//!
//! The registry is the only writer (apps start, are re-keyed, stop); every new connection and
//! REST call reads it under a shared lock and takes one reference to the app's handle (one
//! atomic increment: a clone of the handle's many counters cost ~0.3 µs per REST request), with
//! no actor round trip.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use actix::Addr;

use super::supervisor::{AppSupervisor, ChannelIndex, Unannounced};
use crate::apps::SharedConfig;
use crate::events::{AppEvent, AppEvents, Kind, Limit};
use crate::metrics::AppMetrics;
use crate::ratelimit::AppLimiters;

/// What a handler needs to reach one app.
#[derive(Clone)]
pub struct AppHandle {
    pub config: SharedConfig,
    pub supervisor: Addr<AppSupervisor>,
    pub metrics: AppMetrics,
    /// The app's event stream (debug console, and later webhooks and statistics).
    pub events: AppEvents,
    /// The app's channels that have an actor on this node.
    pub channels: ChannelIndex,
    /// The app's rate gates and message usage (see [`crate::ratelimit`]).
    pub limiters: Arc<AppLimiters>,
    /// The app's link to the other nodes, in cluster mode.
    pub cluster: Option<crate::cluster::AppLink>,
    /// Connections their worker admitted that the supervisor has not heard of yet (see
    /// `Session::announce`): the supervisor counts them against the app's connection cap.
    pub unannounced: Unannounced,
}

impl AppHandle {
    /// Hands API events to the other nodes of the cluster (all of them, whether or not anyone
    /// here listens), and stores cache channels' events in the cluster's cache.
    pub fn publish_remote(&self, events: &[crate::protocol::publish::OutgoingEvent]) {
        let Some(link) = &self.cluster else { return };
        let ttl =
            std::time::Duration::from_secs(u64::from(self.config.load().limits.cache_ttl_secs));
        for e in events {
            link.publish_event(&e.channel, &e.event, &e.data, e.except.as_deref());
            if shared::ChannelName::classify(&e.channel).cache {
                link.cache_store(&e.channel, &e.event, &e.data, ttl);
            }
        }
    }

    /// Something was refused by one of the app's limits: counted by app and limit, and told to
    /// the app's event stream (console, statistics).
    pub fn rate_limited(&self, socket_id: Option<&str>, limit: Limit) {
        self.metrics.rate_limited(limit);
        self.events
            .emit(Kind::RateLimited, || AppEvent::RateLimited {
                socket_id: socket_id.map(str::to_owned),
                limit,
            });
    }
}

#[derive(Default)]
struct Maps {
    by_key: HashMap<String, Arc<AppHandle>>,
    by_id: HashMap<String, Arc<AppHandle>>,
}

/// App lookup by key (WebSocket) or id (REST), shared with the HTTP handlers.
#[derive(Clone, Default)]
pub struct Directory(Arc<RwLock<Maps>>);

impl Directory {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Maps> {
        // Both maps are whole after any panic: entries are inserted and removed as units.
        self.0.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Maps> {
        self.0.write().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn by_key(&self, key: &str) -> Option<Arc<AppHandle>> {
        self.read().by_key.get(key).cloned()
    }

    pub fn by_id(&self, id: &str) -> Option<Arc<AppHandle>> {
        self.read().by_id.get(id).cloned()
    }

    /// An app's statistics counters, without cloning its whole handle (the REST middleware
    /// asks on every request).
    pub fn stats_by_id(&self, id: &str) -> Option<Arc<crate::stats::AppStats>> {
        self.read().by_id.get(id).map(|h| h.metrics.stats.clone())
    }

    /// Every app handle, in no particular order.
    pub fn all(&self) -> Vec<Arc<AppHandle>> {
        self.read().by_id.values().cloned().collect()
    }

    pub(super) fn contains_id(&self, id: &str) -> bool {
        self.read().by_id.contains_key(id)
    }

    /// Adds a started app under its key and id.
    pub(super) fn insert(&self, id: &str, key: &str, handle: AppHandle) {
        let handle = Arc::new(handle);
        let mut maps = self.write();
        maps.by_key.insert(key.to_owned(), handle.clone());
        maps.by_id.insert(id.to_owned(), handle);
    }

    /// Moves an app to a new key (after its configuration changed).
    pub(super) fn rekey(&self, old: &str, new: &str) {
        let mut maps = self.write();
        if let Some(handle) = maps.by_key.remove(old) {
            maps.by_key.insert(new.to_owned(), handle);
        }
    }

    /// Removes an app; its handle, for stopping it.
    pub(super) fn remove(&self, id: &str) -> Option<Arc<AppHandle>> {
        let mut maps = self.write();
        let handle = maps.by_id.remove(id)?;
        maps.by_key.remove(&handle.config.load().key);
        Some(handle)
    }
}
