//! The app registry: starts, reconfigures and stops one supervisor per app, spreads the
//! supervisors over the node's app threads, and keeps the [`Directory`] up to date.
//!
//! Each supervisor, with every channel actor it starts, lives on one of several threads
//! ([`AppThreads`]), so fan-out for different apps runs on different cores. Apps are dealt out
//! in turn as they start.
//!
//! By default those threads are the HTTP workers themselves: each worker adds its own arbiter
//! as it starts. A connection on its app's worker then reaches its supervisor and channels
//! without a cross-thread wake-up (the subscribe, its answer, the unsubscribe and the
//! disconnect each cost one otherwise, and on a virtual machine a wake-up of a sleeping thread
//! is an interrupt through the hypervisor); with two workers that is half the connections.
//! Dedicated threads (`app_threads` > 0) trade that for isolation: a long fan-out of one app
//! then never delays the socket reads and writes of a worker.

use std::sync::{Arc, Mutex};
use std::thread::ThreadId;

use actix::prelude::*;
use arc_swap::ArcSwap;

use super::directory::{AppHandle, Directory};
use super::messages::{ConfigChanged, DrainAll, StartApp, StopApp, StopSupervisor, UpdateApp};
use super::supervisor::{AppSupervisor, ChannelIndex, Unannounced};
use crate::apps::{AppConfig, SharedConfig};
use crate::node::NodeState;

/// The threads supervisors are dealt out over, added as they come up. Shared between the
/// registry, which deals, and whoever starts the threads: the HTTP workers each add their own
/// arbiter as they build their services, which is after the registry exists.
#[derive(Clone, Default)]
pub struct AppThreads(Arc<Mutex<Vec<AppThread>>>);

/// An arbiter, and the thread it was added from when that was a worker adding its own.
type AppThread = (Option<ThreadId>, ArbiterHandle);

impl AppThreads {
    /// Adds a dedicated arbiter.
    pub fn add(&self, arbiter: ArbiterHandle) {
        self.lock().push((None, arbiter));
    }

    /// Adds the arbiter of the calling thread, once per thread (a worker whose service is
    /// rebuilt calls this again), and returns how many threads there are.
    pub fn add_current(&self) -> usize {
        let thread = std::thread::current().id();
        let mut threads = self.lock();
        if !threads.iter().any(|(t, _)| *t == Some(thread)) {
            threads.push((Some(thread), Arbiter::current()));
        }
        threads.len()
    }

    /// The `n`th thread in turn that is still running (a worker that died is skipped: actix
    /// starts a new one, which adds itself; the apps that were on it are started again, see
    /// `AppRegistry::take_dead`).
    fn pick(&self, n: usize) -> Option<ArbiterHandle> {
        let threads = self.lock();
        (0..threads.len())
            .map(|i| &threads[(n + i) % threads.len()].1)
            .find(|arbiter| arbiter.spawn(std::future::ready(())))
            .cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<AppThread>> {
        // A panic while holding this lock leaves the list whole: every change is one push.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

pub struct AppRegistry {
    directory: Directory,
    /// This node's cluster handle, in cluster mode.
    cluster: Option<crate::cluster::Cluster>,
    node: Arc<NodeState>,
    /// Where supervisors run; none means the registry's own arbiter.
    threads: AppThreads,
    next: usize,
}

impl AppRegistry {
    pub fn new(
        directory: Directory,
        node: Arc<NodeState>,
        threads: AppThreads,
        cluster: Option<crate::cluster::Cluster>,
    ) -> Self {
        Self {
            cluster,
            directory,
            node,
            threads,
            next: 0,
        }
    }

    fn next_arbiter(&mut self) -> Option<ArbiterHandle> {
        let arbiter = self.threads.pick(self.next)?;
        self.next = self.next.wrapping_add(1);
        Some(arbiter)
    }
}

impl Actor for AppRegistry {
    type Context = Context<Self>;
}

impl AppRegistry {
    /// Starts an app's supervisor on the next thread and lists it in the directory. `dead` is
    /// the handle of the app's earlier supervisor whose thread stopped: its event stream (whose
    /// consumers, webhooks and statistics, keep listening) and its rate gates carry over.
    fn start(&mut self, app: AppConfig, dead: Option<&AppHandle>) {
        let config: SharedConfig = Arc::new(ArcSwap::from_pointee(app.clone()));
        let metrics = self.node.metrics.for_app(&app.id);
        let events = dead.map(|h| h.events.clone()).unwrap_or_default();
        let limiters = dead.map(|h| h.limiters.clone()).unwrap_or_default();
        let channels = ChannelIndex::default();
        let link = self.cluster.as_ref().map(|c| c.app(&app.id));
        let unannounced = Unannounced::default();
        let supervisor = AppSupervisor::new(
            config.clone(),
            metrics.clone(),
            events.clone(),
            channels.clone(),
            link.clone(),
        )
        .counting(unannounced.clone());
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
            limiters,
            cluster: link,
            unannounced,
        };
        self.directory.insert(&app.id, &app.key, handle);
    }

    /// Takes an app whose supervisor's thread stopped out of the directory, for a new start.
    /// actix-server replaces an HTTP worker that died, and its arbiter, with the supervisors on
    /// it, goes with it; the next sync round (`AppService::sync`) or change of the app finds it.
    fn take_dead(&mut self, id: &str) -> Option<Arc<AppHandle>> {
        let handle = self.directory.by_id(id)?;
        if handle.supervisor.connected() {
            return None;
        }
        tracing::warn!(app_id = %id, "the app's thread stopped: starting the app again");
        self.directory.remove(id)
    }
}

impl Handler<StartApp> for AppRegistry {
    type Result = ();

    fn handle(&mut self, msg: StartApp, _: &mut Context<Self>) {
        let app = msg.0;
        let dead = self.take_dead(&app.id);
        if dead.is_none() && self.directory.contains_id(&app.id) {
            return;
        }
        self.start(app, dead.as_deref());
    }
}

impl Handler<UpdateApp> for AppRegistry {
    type Result = bool;

    fn handle(&mut self, msg: UpdateApp, _: &mut Context<Self>) -> bool {
        let app = msg.0;
        if let Some(dead) = self.take_dead(&app.id) {
            self.start(app, Some(&dead));
            return true;
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The thread an arbiter runs on.
    async fn thread_of(arbiter: &ArbiterHandle) -> ThreadId {
        let (tx, rx) = tokio::sync::oneshot::channel();
        arbiter.spawn(async move {
            let _ = tx.send(std::thread::current().id());
        });
        rx.await.expect("the arbiter runs")
    }

    #[actix_web::test]
    async fn an_app_whose_thread_stopped_is_started_again_and_a_live_one_is_left_alone() {
        let directory = Directory::default();
        let threads = AppThreads::default();
        let (dying, lasting) = (Arbiter::new(), Arbiter::new());
        threads.add(dying.handle());
        let registry =
            AppRegistry::new(directory.clone(), Arc::default(), threads.clone(), None).start();
        let app = AppConfig::generate("t");
        registry.send(StartApp(app.clone())).await.unwrap();
        let first = directory.by_id(&app.id).unwrap();
        registry.send(StartApp(app.clone())).await.unwrap();
        assert!(
            Arc::ptr_eq(&first, &directory.by_id(&app.id).unwrap()),
            "a running app is not started twice"
        );

        dying.stop();
        dying.join().unwrap();
        threads.add(lasting.handle());
        registry.send(StartApp(app.clone())).await.unwrap();
        let second = directory.by_id(&app.id).unwrap();
        assert!(!Arc::ptr_eq(&first, &second));
        assert!(second.supervisor.connected());
        lasting.stop();
    }

    #[actix_web::test]
    async fn a_thread_added_twice_counts_once() {
        let threads = AppThreads::default();
        assert_eq!(threads.add_current(), 1);
        assert_eq!(
            threads.add_current(),
            1,
            "a worker's rebuilt service adds nothing"
        );
        let other = Arbiter::new();
        let added = threads.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        other.spawn(async move {
            let _ = tx.send(added.add_current());
        });
        assert_eq!(rx.await.unwrap(), 2);
        other.stop();
    }

    #[actix_web::test]
    async fn apps_are_dealt_out_in_turn_and_a_stopped_thread_is_skipped() {
        let (first, second, third) = (Arbiter::new(), Arbiter::new(), Arbiter::new());
        let threads = AppThreads::default();
        for arbiter in [&first, &second, &third] {
            threads.add(arbiter.handle());
        }
        let ids = [
            thread_of(&first.handle()).await,
            thread_of(&second.handle()).await,
            thread_of(&third.handle()).await,
        ];
        let dealt = [
            thread_of(&threads.pick(0).unwrap()).await,
            thread_of(&threads.pick(1).unwrap()).await,
            thread_of(&threads.pick(2).unwrap()).await,
        ];
        assert_eq!(dealt, ids);

        second.stop();
        second.join().unwrap();
        assert_eq!(thread_of(&threads.pick(1).unwrap()).await, ids[2]);
        first.stop();
        third.stop();
        first.join().unwrap();
        third.join().unwrap();
        assert!(threads.pick(0).is_none(), "no thread left running");
    }
}
