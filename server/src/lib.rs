//! Reverb Pusher: a self-hosted, multi-app server for the Pusher Channels protocol.
//!
//! [`start`] runs the whole server on a given listener; `main.rs` and the integration tests
//! both use it, so tests exercise the very server users run.

pub mod actors;
pub mod admin;
pub mod apps;
pub mod cli;
pub mod cluster;
pub mod db;
pub mod error;
pub mod events;
pub mod http;
pub mod metrics;
pub mod node;
pub mod protocol;
pub mod ratelimit;
#[cfg(test)]
mod reference;
pub mod settings;
pub mod state;
pub mod stats;
pub mod telemetry;
pub mod tls;
pub mod webhooks;

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr, Arbiter};
use actix_web::{web, App, HttpServer};

use actors::directory::Directory;
use actors::messages::DrainAll;
use actors::registry::{AppRegistry, AppThreads};
use apps::{AppConfig, AppError, AppService, LiveApps};
use db::{Db, DbError};
use node::NodeState;
use settings::Settings;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("cannot serve HTTP: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("cannot join the cluster (cluster_redis_url): {0}")]
    Cluster(String),
}

/// What the cluster asks of this server: bus messages to the app's supervisor, resyncs,
/// a reaper's transitions to the app's event stream, app reloads.
struct ClusterHooks {
    directory: Directory,
    node: Arc<NodeState>,
    apps: std::sync::OnceLock<AppService>,
}

impl cluster::Hooks for ClusterHooks {
    fn deliver(&self, app_id: &str, envelope: cluster::Envelope) {
        if let Some(app) = self.directory.by_id(app_id) {
            app.supervisor.do_send(actors::messages::Remote(envelope));
        }
    }

    fn resync(&self) {
        for app in self.directory.all() {
            app.supervisor.do_send(actors::messages::Resync);
        }
    }

    fn reaped(&self, app_id: &str, vacated: Vec<String>, removed: Vec<(String, String)>) {
        use events::{AppEvent, Kind};
        let Some(app) = self.directory.by_id(app_id) else {
            return;
        };
        for (channel, user_id) in removed {
            app.events
                .emit(Kind::MemberRemoved, || AppEvent::MemberRemoved {
                    channel,
                    user_id,
                });
        }
        for channel in vacated {
            app.events
                .emit(Kind::ChannelVacated, || AppEvent::ChannelVacated {
                    channel,
                });
        }
    }

    fn app_changed(&self, _app_id: &str) {
        if let Some(apps) = self.apps.get().cloned() {
            actix_web::rt::spawn(async move {
                let _ = apps.sync().await;
            });
        }
    }

    fn connections(&self) -> usize {
        self.node
            .connections
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    fn wants_counts(&self, app_id: &str) -> bool {
        self.directory
            .by_id(app_id)
            .is_some_and(|app| app.config.load().subscription_count_events)
    }
}

/// A running server.
pub struct Server {
    /// The address it listens on.
    pub addr: SocketAddr,
    pub registry: Addr<AppRegistry>,
    pub directory: Directory,
    pub db: Db,
    pub node: Arc<NodeState>,
    pub admin: Arc<admin::AdminState>,
    /// Creates, changes and deletes apps (store, audit, apply).
    pub apps: AppService,
    drain_window: Duration,
    handles: Vec<actix_web::dev::ServerHandle>,
    /// The apps' own threads with `app_threads` > 0 (otherwise they run on the HTTP workers).
    arbiters: Vec<Arbiter>,
    /// Stops the HTTP server if this goes away without `shutdown`.
    _http: HttpRunning,
    /// The loop that applies app changes made by other processes.
    app_sync: actix_web::rt::task::JoinHandle<()>,
    tls: Option<Arc<tls::ReloadingCert>>,
    /// The timer that deletes expired admin sessions.
    purge: actix_web::rt::task::JoinHandle<()>,
    /// This node's cluster handle, in cluster mode.
    pub cluster: Option<cluster::Cluster>,
    /// The loop that writes message usage (the quota) to the database.
    usage_keeper: actix_web::rt::task::JoinHandle<()>,
    /// Webhook producers and the delivery worker.
    pub webhooks: webhooks::Webhooks,
    /// Statistics: live numbers and recent errors.
    pub stats: stats::Stats,
    /// The statistics sampler and writer (absent with `stats_enabled = false`).
    stats_running: Option<stats::Running>,
}

/// The main HTTP server, which runs on an arbiter of its own (see [`start`]): stopped when this
/// is dropped, so that a `Server` dropped without [`Server::shutdown`], or a `start` that fails
/// after it began serving, leaves no server behind (before, dropping the caller's runtime did
/// that). After a shutdown both are already stopped and this does nothing.
struct HttpRunning {
    handle: actix_web::dev::ServerHandle,
    control: actix::prelude::ArbiterHandle,
}

impl HttpRunning {
    /// Starts the main HTTP server on an arbiter of its own and returns once every worker is
    /// up. With `threads`, each worker first adds its own thread there for the apps. Nothing is
    /// accepted until the handlers' state is sent on the returned channel: each worker waits
    /// for it (an async data factory), and actix-server accepts only once every worker has its
    /// services. Not on the caller's thread: actix-server starts its workers synchronously,
    /// and they wait for the caller to load the apps.
    async fn start(
        settings: &Settings,
        listener: TcpListener,
        tls: Option<&Arc<tls::ReloadingCert>>,
        admin: &Arc<admin::AdminState>,
        threads: Option<AppThreads>,
        workers: usize,
    ) -> Result<(Self, tokio::sync::watch::Sender<Option<state::AppState>>), StartError> {
        let (state_tx, state_rx) = tokio::sync::watch::channel(None::<state::AppState>);
        let (started_tx, mut started_rx) = tokio::sync::watch::channel(0usize);
        let started_tx = Arc::new(started_tx);
        let on_workers = threads.is_some();
        let admin_state = web::Data::from(admin.clone());
        let metrics_port = settings.metrics_port;
        let server = HttpServer::new(move || {
            if let Some(threads) = &threads {
                started_tx.send_replace(threads.add_current());
            }
            let state_rx = state_rx.clone();
            App::new()
                .data_factory(move || {
                    let mut state_rx = state_rx.clone();
                    async move {
                        let state = state_rx.wait_for(Option::is_some).await.ok();
                        state
                            .and_then(|state| state.clone())
                            .ok_or("the server stopped before it started")
                    }
                })
                .app_data(admin_state.clone())
                .wrap(actix_web::middleware::from_fn(http::observe))
                .wrap(actix_web::middleware::from_fn(http::panel_headers))
                .configure(http::configure_main(metrics_port == 0))
        })
        .workers(workers)
        .client_disconnect_timeout(Duration::from_millis(settings.client_disconnect_timeout_ms))
        .disable_signals()
        .shutdown_timeout(5);
        let server = match tls {
            Some(cert) => server.listen_rustls_0_23(listener, cert.server_config())?,
            None => server.listen(listener)?,
        }
        .run();
        let (ended_tx, mut ended_rx) = tokio::sync::oneshot::channel();
        let control = Arbiter::new();
        let running = Self {
            handle: server.handle(),
            control: control.handle(),
        };
        control.spawn(async move {
            let _ = ended_tx.send(server.await);
            Arbiter::current().stop();
        });
        if on_workers {
            tokio::select! {
                Ok(_) = started_rx.wait_for(|n| *n >= workers) => {}
                ended = &mut ended_rx => {
                    let error = ended.ok().and_then(Result::err);
                    return Err(error.unwrap_or_else(|| std::io::Error::other("no HTTP worker started")).into());
                }
            }
        }
        Ok((running, state_tx))
    }
}

impl Drop for HttpRunning {
    fn drop(&mut self) {
        // The command is sent now; its completion is not waited for.
        drop(self.handle.stop(false));
        self.control.stop();
    }
}

fn into_db(e: AppError) -> DbError {
    match e {
        AppError::Db(e) => e,
        AppError::NotFound(_) => DbError::NotFound,
        other => DbError::Unavailable(other.to_string()),
    }
}

pub use db::blocking;

/// Opens the database, loads every app into its supervisor and serves HTTP on `listener`.
/// Must be called inside an actix system.
pub async fn start(settings: Settings, listener: TcpListener) -> Result<Server, StartError> {
    let url = settings.database_url.clone();
    let keys = settings.key_source().map_err(DbError::from)?;
    let options = settings.pool_options();
    tracing::info!(database = ?db::DbUrl::parse(&url)?, "opening the database");
    let db = web::block(move || Db::open(&url, options, &keys))
        .await
        .map_err(|_| DbError::Unavailable("database worker failed".into()))??;

    let node = Arc::new(NodeState::default());
    let directory = Directory::default();
    let hooks = Arc::new(ClusterHooks {
        directory: directory.clone(),
        node: node.clone(),
        apps: std::sync::OnceLock::new(),
    });
    let cluster = match &settings.cluster_redis_url {
        Some(url) => {
            let node_id = if settings.cluster_node_id.is_empty() {
                cluster::generate_node_id()
            } else {
                settings.cluster_node_id.clone()
            };
            let config = cluster::Config {
                redis_url: url.0.clone(),
                key_prefix: settings.cluster_key_prefix.clone(),
                node_id,
                heartbeat: Duration::from_millis(settings.cluster_heartbeat_ms),
                lease: Duration::from_millis(settings.cluster_lease_ms),
                address: listener.local_addr()?.to_string(),
                vacate_delay: Duration::from_millis(settings.webhook_vacate_delay_ms),
            };
            let started = cluster::Cluster::start(config, &node.metrics, hooks.clone()).await;
            Some(started.map_err(|e| StartError::Cluster(e.to_string()))?)
        }
        None => None,
    };
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let workers = if settings.workers == 0 {
        cores
    } else {
        settings.workers
    };
    // Supervisors run on the HTTP workers unless `app_threads` gives them threads of their own
    // (`actors::registry` explains the trade).
    let on_workers = settings.app_threads == 0;
    let threads = AppThreads::default();
    let arbiters: Vec<Arbiter> = (0..settings.app_threads).map(|_| Arbiter::new()).collect();
    for arbiter in &arbiters {
        threads.add(arbiter.handle());
    }
    let registry = AppRegistry::new(
        directory.clone(),
        node.clone(),
        threads.clone(),
        cluster.clone(),
    )
    .start();
    let apps = AppService::with_live(
        db.clone(),
        settings.default_app_limits.clone(),
        LiveApps::new(&registry, directory.clone()).with_cluster(cluster.clone()),
    );

    // The HTTP server starts here, so that its workers exist to run the supervisors, but it
    // accepts nothing until everything below is ready (`HttpRunning::start`).
    let addr = listener.local_addr()?;
    let tls = settings
        .tls_files()
        .map(tls::ReloadingCert::new)
        .transpose()?;
    if let Some(cert) = &tls {
        cert.watch(Duration::from_secs(settings.tls_reload_secs));
    }
    let admin = Arc::new(admin::AdminState {
        setup_file: std::path::Path::new(&settings.master_key_file).with_file_name("setup-token"),
        ..admin::AdminState::default()
    });
    let (http, ready) = HttpRunning::start(
        &settings,
        listener,
        tls.as_ref(),
        &admin,
        on_workers.then(|| threads.clone()),
        workers,
    )
    .await?;
    let mut handles = vec![http.handle.clone()];

    // Only now that the workers are there to run the apps may a peer's change start one.
    let _ = hooks.apps.set(apps.clone());
    // Awaited so that every app is reachable before the first connection is accepted.
    apps.sync().await?;
    let app_sync = apps
        .clone()
        .spawn_sync(Duration::from_millis(settings.app_sync_interval_ms));
    let usage_keeper = ratelimit::quota::spawn_keeper(
        db.clone(),
        directory.clone(),
        Duration::from_secs(settings.usage_flush_secs.max(1)),
    );
    // Before the listener opens, so that no event of an app with webhooks is missed.
    let webhooks = webhooks::Webhooks::start(
        db.clone(),
        directory.clone(),
        node.clone(),
        webhooks::Config::from_settings(&settings),
    )
    .await?;

    let mut stats_config = stats::Config::from_settings(&settings);
    stats_config.cluster = cluster.is_some();
    if let (true, Some(cluster)) = (settings.stats_node.is_empty(), &cluster) {
        // Each node writes its own rows and queries add the nodes up: in a cluster the row's
        // node is the cluster's node id (several nodes may share a host name).
        stats_config.node = cluster.node_id().to_owned();
    }
    let stats = stats::Stats::new(stats_config);
    let stats_running = settings.stats_enabled.then(|| {
        stats::start(
            &stats,
            db.clone(),
            directory.clone(),
            node.clone(),
            cluster.clone(),
        )
    });

    if blocking(&db, Db::count_users).await? == 0 {
        // The bootstrap credential goes to the terminal (or a private file), not the log:
        // logs are shipped and kept. It works once, for an hour, and only while no account
        // exists.
        let token = admin.setup.issue();
        admin::auth::show_setup_token(&token, &admin.setup_file);
        tracing::warn!(
            "no admin account yet: create the first one with the setup token shown on the \
             terminal (stderr) or in the file it names, or run `reverb-pusher user create`"
        );
    } else {
        admin::auth::forget_setup_token(&admin.setup_file);
    }
    let purge = actix_web::rt::spawn(admin::login::purge_expired_sessions(db.clone()));
    let drain_window = Duration::from_secs(settings.drain_window_secs);
    let redirect_port = settings.http_redirect_port;
    let metrics_port = settings.metrics_port;
    let metrics_host = settings.host.clone();
    let state = state::AppState {
        directory: directory.clone(),
        registry: registry.clone(),
        node: node.clone(),
        settings: Arc::new(settings),
        db: db.clone(),
        apps: apps.clone(),
        webhooks: webhooks.clone(),
        cluster: cluster.clone(),
        stats: stats.clone(),
    };
    // The workers finish building their services and the listener opens.
    ready.send_replace(Some(state.clone()));
    let state = web::Data::new(state);
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(%addr, workers, tls = tls.is_some(), admin_panel = %format!("{scheme}://{addr}/admin/"), "listening");
    if redirect_port != 0 {
        let tls_port = addr.port();
        let redirect = HttpServer::new(move || {
            App::new().default_service(web::to(move |req: actix_web::HttpRequest| async move {
                http::redirect_to_https(&req, tls_port)
            }))
        })
        .workers(1)
        .disable_signals()
        .bind((metrics_host.as_str(), redirect_port))?
        .run();
        handles.push(redirect.handle());
        actix_web::rt::spawn(redirect);
        tracing::info!(port = redirect_port, "redirecting plain HTTP to https");
    }
    if metrics_port != 0 {
        let metrics_state = state.clone();
        let metrics = HttpServer::new(move || {
            App::new()
                .app_data(metrics_state.clone())
                .route("/metrics", web::get().to(http::metrics))
        })
        .workers(1)
        .disable_signals()
        .bind((metrics_host.as_str(), metrics_port))?
        .run();
        handles.push(metrics.handle());
        actix_web::rt::spawn(metrics);
        tracing::info!(port = metrics_port, "metrics listening");
    }
    Ok(Server {
        addr,
        registry,
        directory,
        db,
        node,
        admin,
        apps,
        drain_window,
        handles,
        arbiters,
        _http: http,
        app_sync,
        tls,
        purge,
        cluster,
        usage_keeper,
        webhooks,
        stats,
        stats_running,
    })
}

impl Server {
    /// Whether the server speaks TLS on its port.
    pub fn uses_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Reloads the TLS certificate files now (SIGHUP); without TLS this does nothing.
    pub fn reload_tls(&self) {
        if let Some(cert) = &self.tls {
            if let Err(e) = cert.reload() {
                tracing::warn!(error = %e, "TLS reload failed; keeping the current certificate");
            }
        }
    }

    /// Creates an app with fresh credentials and the default limits, stores it and starts its
    /// supervisor (recorded in the audit log as done by `server`).
    pub async fn create_app(&self, name: &str) -> Result<AppConfig, DbError> {
        let settings = shared::admin::AppPatch::default();
        self.apps
            .create("server", name, &settings)
            .await
            .map_err(into_db)
    }

    /// Stores a fully specified app and starts its supervisor.
    pub async fn add_app(&self, app: AppConfig) -> Result<AppConfig, DbError> {
        self.apps.add("server", app).await.map_err(into_db)
    }

    /// Stores a changed app and applies it to the running supervisor at once.
    pub async fn update_app(&self, app: AppConfig) -> Result<AppConfig, DbError> {
        self.apps.replace("server", app).await.map_err(into_db)
    }

    /// Tells every client to reconnect elsewhere (4200), then stops serving.
    ///
    /// Readiness turns false at once and new connections are refused with 4200; open ones are
    /// closed with 4200 at random moments within the drain window (one whose supervisor is
    /// told of it later, see `Session::announce`, within what is left of the window, or at
    /// once after it); then in-flight HTTP requests finish (at most 5 s) and the listeners
    /// stop.
    pub async fn shutdown(self) {
        self.app_sync.abort();
        self.node
            .draining
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let open = self
            .node
            .connections
            .load(std::sync::atomic::Ordering::Relaxed);
        tracing::info!(
            connections = open,
            window_secs = self.drain_window.as_secs(),
            "draining"
        );
        let _ = self
            .registry
            .send(DrainAll {
                window: self.drain_window,
            })
            .await;
        let deadline = std::time::Instant::now() + self.drain_window + Duration::from_secs(2);
        while self
            .node
            .connections
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
            && std::time::Instant::now() < deadline
        {
            actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        }
        // Let the last close frames reach their sockets before the workers stop.
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
        self.purge.abort();
        // Webhook events still in memory (gathered or held back) go to the outbox.
        self.webhooks.shutdown().await;
        // The last statistics of this run (closes counted during the drain included).
        if let Some(running) = self.stats_running {
            running.stop().await;
        }
        // The last message counts of this run, so that a restart keeps the quota.
        self.usage_keeper.abort();
        let (db, directory) = (self.db.clone(), self.directory.clone());
        let _ = web::block(move || ratelimit::quota::keep(&db, &directory)).await;
        // Every socket is closed: this node's share of the cluster is zero; leave at once.
        if let Some(cluster) = &self.cluster {
            cluster.leave().await;
        }
        for handle in &self.handles {
            handle.stop(true).await;
        }
        for arbiter in &self.arbiters {
            arbiter.stop();
        }
        tracing::info!("stopped");
    }
}
