//! The app registry: starts, reconfigures and stops one supervisor per app, and keeps the
//! directory that HTTP handlers use to find an app by key or id.
//!
//! The directory changes only when apps are added, re-keyed or removed; reads (every new
//! connection and REST call) take a shared read lock and clone one `AppHandle`.

use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, RwLock};

use actix::prelude::*;
use arc_swap::ArcSwap;
use shared::CloseCode;

use super::messages::{ConfigChanged, ShutdownAll, StartApp, StopApp, StopSupervisor, UpdateApp};
use super::supervisor::AppSupervisor;
use crate::apps::SharedConfig;

/// What a handler needs to reach one app.
#[derive(Clone)]
pub struct AppHandle {
    pub config: SharedConfig,
    pub supervisor: Addr<AppSupervisor>,
}

/// Node-wide counters.
#[derive(Debug, Default)]
pub struct NodeState {
    /// Open WebSocket connections on this node, across apps.
    pub connections: AtomicUsize,
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
}

impl AppRegistry {
    pub fn new(directory: Directory) -> Self {
        Self { directory }
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
        let supervisor = AppSupervisor::new(config.clone()).start();
        let handle = AppHandle { config, supervisor };
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
        true
    }
}

impl Handler<ShutdownAll> for AppRegistry {
    type Result = ();

    fn handle(&mut self, _: ShutdownAll, _: &mut Context<Self>) {
        for handle in self.directory.all() {
            handle.supervisor.do_send(StopSupervisor {
                code: CloseCode::Reconnect,
                reason: "Server is shutting down. Please reconnect shortly.".into(),
            });
        }
    }
}
