//! The app registry: starts, reconfigures and stops one supervisor per app, and keeps the
//! directory that HTTP handlers use to find an app by key or id.
//!
//! The directory changes only when apps are added, re-keyed or removed; reads (every new
//! connection and REST call) take a shared read lock and clone one `AppHandle`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, RwLock};

use actix::prelude::*;
use arc_swap::ArcSwap;

use super::messages::{ConfigChanged, DrainAll, StartApp, StopApp, StopSupervisor, UpdateApp};
use super::supervisor::{AppSupervisor, ChannelIndex};
use crate::apps::SharedConfig;
use crate::console::DebugFeed;
use crate::metrics::{AppMetrics, Metrics};

/// What a handler needs to reach one app.
#[derive(Clone)]
pub struct AppHandle {
    pub config: SharedConfig,
    pub supervisor: Addr<AppSupervisor>,
    pub metrics: AppMetrics,
    /// The app's debug console feed.
    pub debug: DebugFeed,
    /// The app's channels that have an actor on this node.
    pub channels: ChannelIndex,
}

/// Node-wide state.
#[derive(Default)]
pub struct NodeState {
    /// Open WebSocket connections on this node, across apps.
    pub connections: AtomicUsize,
    /// Set when a shutdown starts: readiness turns false and new connections are refused.
    pub draining: AtomicBool,
    pub metrics: Metrics,
}

#[derive(Default)]
struct Maps {
    by_key: HashMap<String, AppHandle>,
    by_id: HashMap<String, AppHandle>,
}

/// App lookup by key (WebSocket) or id (REST), shared with the HTTP handlers.
#[derive(Clone, Default)]
pub struct Directory(Arc<RwLock<Maps>>);

impl Directory {
    pub fn by_key(&self, key: &str) -> Option<AppHandle> {
        self.0
            .read()
            .expect("directory lock")
            .by_key
            .get(key)
            .cloned()
    }

    pub fn by_id(&self, id: &str) -> Option<AppHandle> {
        self.0
            .read()
            .expect("directory lock")
            .by_id
            .get(id)
            .cloned()
    }

    /// Every app handle, in no particular order.
    pub fn all(&self) -> Vec<AppHandle> {
        self.0
            .read()
            .expect("directory lock")
            .by_id
            .values()
            .cloned()
            .collect()
    }
}

pub struct AppRegistry {
    directory: Directory,
    node: Arc<NodeState>,
}

impl AppRegistry {
    pub fn new(directory: Directory, node: Arc<NodeState>) -> Self {
        Self { directory, node }
    }
}

impl Actor for AppRegistry {
    type Context = Context<Self>;
}

impl Handler<StartApp> for AppRegistry {
    type Result = ();

    fn handle(&mut self, msg: StartApp, _: &mut Context<Self>) {
        let app = msg.0;
        let mut maps = self.directory.0.write().expect("directory lock");
        if maps.by_id.contains_key(&app.id) {
            return;
        }
        let config: SharedConfig = Arc::new(ArcSwap::from_pointee(app.clone()));
        let metrics = self.node.metrics.for_app(&app.id);
        let debug = DebugFeed::default();
        let channels = ChannelIndex::default();
        let supervisor = AppSupervisor::new(
            config.clone(),
            metrics.clone(),
            debug.clone(),
            channels.clone(),
        )
        .start();
        let handle = AppHandle {
            config,
            supervisor,
            metrics,
            debug,
            channels,
        };
        maps.by_key.insert(app.key.clone(), handle.clone());
        maps.by_id.insert(app.id, handle);
    }
}

impl Handler<UpdateApp> for AppRegistry {
    type Result = bool;

    fn handle(&mut self, msg: UpdateApp, _: &mut Context<Self>) -> bool {
        let app = msg.0;
        let mut maps = self.directory.0.write().expect("directory lock");
        let Some(handle) = maps.by_id.get(&app.id).cloned() else {
            return false;
        };
        if handle.config.load().version > app.version {
            // Two writers' applies crossed: the newer stored version is already live.
            return false;
        }
        let old_key = handle.config.load().key.clone();
        if old_key != app.key {
            maps.by_key.remove(&old_key);
            maps.by_key.insert(app.key.clone(), handle.clone());
        }
        handle.config.store(Arc::new(app));
        handle.supervisor.do_send(ConfigChanged);
        true
    }
}

impl Handler<StopApp> for AppRegistry {
    type Result = bool;

    fn handle(&mut self, msg: StopApp, _: &mut Context<Self>) -> bool {
        let mut maps = self.directory.0.write().expect("directory lock");
        let Some(handle) = maps.by_id.remove(&msg.id) else {
            return false;
        };
        maps.by_key.remove(&handle.config.load().key);
        handle.supervisor.do_send(StopSupervisor {
            code: msg.code,
            reason: msg.reason,
        });
        self.node.metrics.remove_app(&msg.id);
        true
    }
}

impl Handler<DrainAll> for AppRegistry {
    type Result = ();

    fn handle(&mut self, msg: DrainAll, _: &mut Context<Self>) {
        for handle in self.directory.all() {
            handle.supervisor.do_send(msg);
        }
    }
}
