//! The app registry: starts, reconfigures and stops one supervisor per app, spreads the
//! supervisors over the node's app threads, and keeps the [`Directory`] up to date.
//!
//! Each supervisor, with every channel actor it starts, lives on one of several arbiters (one
//! per core by default), so fan-out for different apps runs on different cores and one busy
//! app cannot stall the others. Apps are dealt out in turn as they start.

use std::sync::Arc;

use actix::prelude::*;
use arc_swap::ArcSwap;

use super::directory::{AppHandle, Directory};
use super::messages::{ConfigChanged, DrainAll, StartApp, StopApp, StopSupervisor, UpdateApp};
use super::supervisor::{AppSupervisor, ChannelIndex};
use crate::apps::SharedConfig;
use crate::events::AppEvents;
use crate::node::NodeState;

pub struct AppRegistry {
    directory: Directory,
    /// This node's cluster handle, in cluster mode.
    cluster: Option<crate::cluster::Cluster>,
    node: Arc<NodeState>,
    /// Where supervisors run; empty means the registry's own arbiter.
    arbiters: Vec<ArbiterHandle>,
    next: usize,
}

impl AppRegistry {
    pub fn new(
        directory: Directory,
        node: Arc<NodeState>,
        arbiters: Vec<ArbiterHandle>,
        cluster: Option<crate::cluster::Cluster>,
    ) -> Self {
        Self {
            cluster,
            directory,
            node,
            arbiters,
            next: 0,
        }
    }

    fn next_arbiter(&mut self) -> Option<ArbiterHandle> {
        let arbiter = self.arbiters.get(self.next % self.arbiters.len().max(1))?;
        self.next = self.next.wrapping_add(1);
        Some(arbiter.clone())
    }
}

impl Actor for AppRegistry {
    type Context = Context<Self>;
}

impl Handler<StartApp> for AppRegistry {
    type Result = ();

    fn handle(&mut self, msg: StartApp, _: &mut Context<Self>) {
        let app = msg.0;
        if self.directory.contains_id(&app.id) {
            return;
        }
        let config: SharedConfig = Arc::new(ArcSwap::from_pointee(app.clone()));
        let metrics = self.node.metrics.for_app(&app.id);
        let events = AppEvents::default();
        let channels = ChannelIndex::default();
        let link = self.cluster.as_ref().map(|c| c.app(&app.id));
        let unannounced = Arc::default();
        let supervisor = AppSupervisor::new(
            config.clone(),
            metrics.clone(),
            events.clone(),
            channels.clone(),
            link.clone(),
        )
        .counting(Arc::clone(&unannounced));
        let supervisor = match self.next_arbiter() {
            Some(arbiter) => AppSupervisor::start_in_arbiter(&arbiter, move |_| supervisor),
            None => supervisor.start(),
        };
        let handle = AppHandle {
            config,
            supervisor,
            metrics,
            events,
            channels,
            limiters: Arc::default(),
            cluster: link,
            unannounced,
        };
        self.directory.insert(&app.id, &app.key, handle);
    }
}

impl Handler<UpdateApp> for AppRegistry {
    type Result = bool;

    fn handle(&mut self, msg: UpdateApp, _: &mut Context<Self>) -> bool {
        let app = msg.0;
        let Some(handle) = self.directory.by_id(&app.id) else {
            return false;
        };
        if handle.config.load().version > app.version {
            // Two writers' applies crossed: the newer stored version is already live.
            return false;
        }
        let old_key = handle.config.load().key.clone();
        if old_key != app.key {
            self.directory.rekey(&old_key, &app.key);
        }
        let changed = ConfigChanged {
            version: app.version,
            enabled: app.enabled,
        };
        handle.config.store(Arc::new(app));
        handle.supervisor.do_send(changed);
        true
    }
}

impl Handler<StopApp> for AppRegistry {
    type Result = bool;

    fn handle(&mut self, msg: StopApp, _: &mut Context<Self>) -> bool {
        let Some(handle) = self.directory.remove(&msg.id) else {
            return false;
        };
        handle.supervisor.do_send(StopSupervisor(msg.why));
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
