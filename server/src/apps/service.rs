//! The one place that changes an app: create, update (a patch), rotate its secret, enable or
//! disable it, delete it. Every writer goes through here (the admin API handlers, the CLI, the
//! server's own first-run app and the tests), so storing the change, recording it in the audit
//! log and applying it to the running server cannot drift apart between callers.
//!
//! **Store.** Changes are read-modify-write on the *stored* row, not on the live copy: the row
//! is read, the change is checked and applied to it, and written back with a compare-and-swap
//! on its `version` (`UPDATE ... WHERE id = ? AND version = ?`). A writer that lost the race
//! (another request, another node, the CLI) re-reads and re-applies its change, so concurrent
//! edits of different fields all survive and none is lost.
//!
//! **Audit.** After the row is stored its audit record is written with the version that won as
//! "before" and the new one as "after", secrets masked.
//!
//! **Apply.** Optional, because the CLI has no actor system: a service built with
//! [`LiveApps`] (the running server) then hands the stored configuration to the registry through
//! `Recipient`s (`StartApp`, `UpdateApp`, `StopApp`). Only stored versions are applied, and the
//! registry refuses a version older than the one it holds, so memory never goes back in time.
//! Applying happens under one lock that [`AppService::sync`] (the loop that picks up changes
//! made by other processes, see [`super::sync`]) holds while it compares the database with
//! memory; each side therefore acts on a database state at least as new as the other's.

use std::collections::HashSet;
use std::sync::Arc;

use actix::{Addr, Recipient};
use actix_web::web;
use serde_json::Value;
use shared::admin::{App, AppPatch};
use shared::Closing;

use super::patch::{self, ConfigError};
use super::{apply_patch, new_secret, AppConfig, AppLimits, PreviousSecret};
use crate::actors::directory::Directory;
use crate::actors::messages::{StartApp, StopApp, UpdateApp};
use crate::actors::registry::AppRegistry;
use crate::db::admin::AuditRow;
use crate::db::{now_unix, Db, DbError};

/// Longest grace period for a rotated-out secret: 30 days.
pub const MAX_GRACE_SECS: u32 = 30 * 24 * 3600;

/// How often a change re-reads and retries after losing a compare-and-swap before giving up.
const MAX_ATTEMPTS: u32 = 100;

/// Why an app change did not happen.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("no app with id {0}")]
    NotFound(String),
    #[error(transparent)]
    Invalid(#[from] ConfigError),
    /// Other writers kept changing the app first, [`MAX_ATTEMPTS`] times in a row.
    #[error("the app kept changing while this change was made; retry")]
    Contended,
    /// The app's `id` or `key` (the field) belongs to another app. The database's unique
    /// constraints decide, so two writers racing for one value cannot both win.
    #[error("{}", taken_message(.0))]
    Taken(&'static str),
    #[error(transparent)]
    Db(#[from] DbError),
}

fn taken_message(field: &str) -> String {
    match field {
        "id" => "an app with this id exists already".to_owned(),
        _ => format!("another app uses this {field} already"),
    }
}

/// Credentials a person chose for a new app; each one left out is generated.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ChosenCredentials {
    pub id: Option<String>,
    pub key: Option<String>,
    pub secret: Option<String>,
}

impl std::fmt::Debug for ChosenCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChosenCredentials")
            .field("id", &self.id)
            .field("key", &self.key)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl ChosenCredentials {
    /// Checks each chosen credential (`shared::credentials`) and puts it in `config`.
    pub fn apply_to(&self, config: &mut AppConfig) -> Result<(), ConfigError> {
        let refused =
            |e: shared::credentials::CredentialError| ConfigError::new(e.field, e.message);
        if let Some(id) = &self.id {
            shared::credentials::check_id(id).map_err(refused)?;
            config.id.clone_from(id);
        }
        if let Some(key) = &self.key {
            shared::credentials::check_key(key).map_err(refused)?;
            config.key.clone_from(key);
        }
        if let Some(secret) = &self.secret {
            shared::credentials::check_secret(secret).map_err(refused)?;
            config.secret.clone_from(secret);
        }
        Ok(())
    }
}

/// The running server's side of the seam: where stored changes are applied.
#[derive(Clone)]
pub struct LiveApps {
    start: Recipient<StartApp>,
    update: Recipient<UpdateApp>,
    stop: Recipient<StopApp>,
    directory: Directory,
    /// Serialises applying with [`AppService::sync`]'s compare-and-apply. It guards the stored
    /// `(id, version)`s that could not be read, so that each is reported once, not every round.
    lock: Arc<tokio::sync::Mutex<HashSet<(String, i64)>>>,
    /// In cluster mode, every change applied here is announced to the other nodes.
    cluster: Option<crate::cluster::Cluster>,
}

impl LiveApps {
    pub fn new(registry: &Addr<AppRegistry>, directory: Directory) -> Self {
        Self {
            start: registry.clone().recipient(),
            update: registry.clone().recipient(),
            stop: registry.clone().recipient(),
            directory,
            lock: Arc::default(),
            cluster: None,
        }
    }

    /// Announces every applied change to the cluster's other nodes (they reload the app from
    /// the database at once instead of at their next sync round).
    #[must_use]
    pub fn with_cluster(mut self, cluster: Option<crate::cluster::Cluster>) -> Self {
        self.cluster = cluster;
        self
    }
}

/// What to do to memory after a stored change.
enum Apply {
    Start(AppConfig),
    Update(AppConfig),
    Stop(String),
}

/// What [`AppService::sync`] changed in memory.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Synced {
    pub started: usize,
    pub updated: usize,
    pub stopped: usize,
}

/// Creates, changes and deletes apps: store, audit, apply. Cheap to clone.
#[derive(Clone)]
pub struct AppService {
    db: Db,
    /// The limits of newly created apps (`[default_app_limits]`).
    defaults: AppLimits,
    live: Option<LiveApps>,
}

impl AppService {
    /// A service that stores and audits only (the CLI).
    pub fn new(db: Db, defaults: AppLimits) -> Self {
        Self {
            db,
            defaults,
            live: None,
        }
    }

    /// A service that also applies every change to the running server.
    pub fn with_live(db: Db, defaults: AppLimits, live: LiveApps) -> Self {
        Self {
            db,
            defaults,
            live: Some(live),
        }
    }

    /// Runs blocking database work off the async threads.
    async fn run<T, F>(&self, f: F) -> Result<T, AppError>
    where
        F: FnOnce(&Db) -> Result<T, AppError> + Send + 'static,
        T: Send + 'static,
    {
        let db = self.db.clone();
        web::block(move || f(&db))
            .await
            .map_err(|_| DbError::Unavailable("database worker failed".into()))?
    }

    async fn apply(&self, change: Apply) {
        let Some(live) = &self.live else { return };
        let _serialised = live.lock.lock().await;
        // A failed send means the registry is gone (the server is stopping): nothing to apply.
        let id = match change {
            Apply::Start(config) => {
                let id = config.id.clone();
                let _ = live.start.send(StartApp(config)).await;
                id
            }
            Apply::Update(config) => {
                let id = config.id.clone();
                let _ = live.update.send(UpdateApp(config)).await;
                id
            }
            Apply::Stop(id) => {
                let _ = live.stop.send(stopped(id.clone())).await;
                id
            }
        };
        if let Some(cluster) = &live.cluster {
            cluster.announce_app_change(&id);
        }
    }

    /// Every stored app, oldest first.
    pub async fn list(&self) -> Result<Vec<AppConfig>, AppError> {
        self.run(|db| Ok(db.list_apps()?)).await
    }

    /// One stored app.
    pub async fn get(&self, id: &str) -> Result<AppConfig, AppError> {
        let id = id.to_owned();
        self.run(move |db| db.get_app(&id).map_err(|e| not_found(e, &id)))
            .await
    }

    /// Creates an app with fresh credentials, the default limits and `settings` applied.
    pub async fn create(
        &self,
        actor: &str,
        name: &str,
        settings: &AppPatch,
    ) -> Result<AppConfig, AppError> {
        self.create_with(actor, name, &ChosenCredentials::default(), settings)
            .await
    }

    /// Creates an app with the credentials a person chose (the others generated), the default
    /// limits and `settings` applied. A chosen id or key in use is [`AppError::Taken`].
    pub async fn create_with(
        &self,
        actor: &str,
        name: &str,
        credentials: &ChosenCredentials,
        settings: &AppPatch,
    ) -> Result<AppConfig, AppError> {
        let mut config = AppConfig::generate_with(&patch::app_name(name)?, self.defaults.clone());
        credentials.apply_to(&mut config)?;
        apply_patch(&mut config, settings)?;
        self.add(actor, config).await
    }

    /// A new app template with fresh credentials and the default limits (what `create` starts
    /// from), for planning an import.
    pub fn template(&self, name: &str) -> AppConfig {
        AppConfig::generate_with(name, self.defaults.clone())
    }

    /// Stores a fully specified new app (at version 1) and starts it.
    pub async fn add(&self, actor: &str, config: AppConfig) -> Result<AppConfig, AppError> {
        self.add_as(actor, "app.create", config).await
    }

    /// [`Self::add`], recorded in the audit log as `action`.
    pub async fn add_as(
        &self,
        actor: &str,
        action: &'static str,
        mut config: AppConfig,
    ) -> Result<AppConfig, AppError> {
        config.version = 1;
        let (stored, actor) = (config.clone(), actor.to_owned());
        // The outer error: nothing was stored. The inner one: only the audit record failed,
        // and memory still follows the stored row.
        let audited = self
            .run(move |db| {
                match db.insert_app(&stored) {
                    Ok(()) => {}
                    // Which unique value was taken: the id if a row has it, else the key.
                    Err(DbError::Conflict) => {
                        return Err(match db.get_app(&stored.id) {
                            Err(DbError::NotFound) => AppError::Taken("key"),
                            _ => AppError::Taken("id"),
                        })
                    }
                    Err(e) => return Err(e.into()),
                }
                Ok(audit(db, actor, action, &stored.id, None, Some(&stored)))
            })
            .await?;
        self.apply(Apply::Start(config.clone())).await;
        audited?;
        tracing::info!(app_id = %config.id, "app created");
        Ok(config)
    }

    /// Applies a patch to the stored app.
    pub async fn update(
        &self,
        actor: &str,
        id: &str,
        patch: AppPatch,
    ) -> Result<AppConfig, AppError> {
        self.modify(actor, "app.update", id, move |c| apply_patch(c, &patch))
            .await
    }

    /// Enables or disables an app; disabling closes its connections with 4003.
    pub async fn set_enabled(
        &self,
        actor: &str,
        id: &str,
        enabled: bool,
    ) -> Result<AppConfig, AppError> {
        let patch = AppPatch {
            enabled: Some(enabled),
            ..AppPatch::default()
        };
        self.update(actor, id, patch).await
    }

    /// Replaces every setting of a stored app with `config`'s (whatever version it was read at).
    pub async fn replace(&self, actor: &str, config: AppConfig) -> Result<AppConfig, AppError> {
        let id = config.id.clone();
        self.modify(actor, "app.update", &id, move |c| {
            *c = AppConfig {
                version: c.version,
                ..config.clone()
            };
            Ok(())
        })
        .await
    }

    /// Replaces the secret. With a grace period the old one keeps signing until it ends.
    pub async fn rotate_secret(
        &self,
        actor: &str,
        id: &str,
        grace_secs: u32,
    ) -> Result<AppConfig, AppError> {
        let grace = patch::ranged("grace_period_secs", grace_secs, 0, MAX_GRACE_SECS)?;
        self.modify(actor, "app.rotate_secret", id, move |c| {
            c.previous_secret = (grace > 0).then(|| PreviousSecret {
                secret: c.secret.clone(),
                expires_at: now_unix() + i64::from(grace),
            });
            c.secret = new_secret();
            Ok(())
        })
        .await
    }

    /// Deletes an app; its connections are closed with 4001.
    pub async fn delete(&self, actor: &str, id: &str) -> Result<(), AppError> {
        let (id, actor) = (id.to_owned(), actor.to_owned());
        let target = id.clone();
        let audited = self
            .run(move |db| {
                let before = db.get_app(&id).map_err(|e| not_found(e, &id))?;
                db.delete_app(&id).map_err(|e| not_found(e, &id))?;
                Ok(audit(db, actor, "app.delete", &id, Some(&before), None))
            })
            .await?;
        self.apply(Apply::Stop(target.clone())).await;
        audited?;
        tracing::info!(app_id = %target, "app deleted");
        Ok(())
    }

    /// The read-modify-write of every change: re-read and retry on a lost compare-and-swap,
    /// audit the version that won (as `action`), apply it. `change` may run more than once.
    pub async fn modify<F>(
        &self,
        actor: &str,
        action: &'static str,
        id: &str,
        change: F,
    ) -> Result<AppConfig, AppError>
    where
        F: Fn(&mut AppConfig) -> Result<(), ConfigError> + Send + 'static,
    {
        let (id, actor) = (id.to_owned(), actor.to_owned());
        let stored = self
            .run(move |db| {
                // The id stays; only a key can collide with another app's.
                let (before, after) = compare_and_swap(db, &id, &change).map_err(|e| match e {
                    AppError::Db(DbError::Conflict) => AppError::Taken("key"),
                    other => other,
                })?;
                let audited = audit(db, actor, action, &id, Some(&before), Some(&after));
                Ok((after, audited))
            })
            .await;
        let (config, audited) = stored?;
        // Stored: memory follows even if the audit record failed.
        self.apply(Apply::Update(config.clone())).await;
        audited?;
        tracing::info!(app_id = %config.id, action, version = config.version, "app changed");
        Ok(config)
    }

    /// Repeats [`Self::sync`] every `interval` until the returned handle is aborted. A
    /// failing database is logged when it starts failing and when it recovers, not every round.
    pub fn spawn_sync(self, interval: std::time::Duration) -> actix_web::rt::task::JoinHandle<()> {
        let service = self;
        actix_web::rt::spawn(async move {
            let mut failing = false;
            loop {
                actix_web::rt::time::sleep(interval).await;
                match (service.sync().await, failing) {
                    (Ok(_), true) => {
                        failing = false;
                        tracing::info!("app sync works again");
                    }
                    (Err(e), false) => {
                        failing = true;
                        tracing::warn!(error = %e, "cannot read apps from the database; retrying");
                    }
                    // Still working, or still failing (already logged).
                    (Ok(_), false) | (Err(_), true) => {}
                }
            }
        })
    }

    /// Brings the running server in line with the database: starts apps it does not run yet,
    /// applies newer stored versions, stops apps that are no longer stored. Start-up loads every
    /// app this way, and a timer repeats it to pick up changes made by other processes (the
    /// CLI, other nodes). Does nothing without [`LiveApps`].
    pub async fn sync(&self) -> Result<Synced, DbError> {
        let Some(live) = &self.live else {
            return Ok(Synced::default());
        };
        let mut unreadable = live.lock.lock().await;
        // Memory first, then the database: an app created meanwhile is then in the database
        // snapshot (started, or already running) rather than missing from it (stopped).
        let memory: Vec<(String, i64)> = live
            .directory
            .all()
            .iter()
            .map(|h| {
                let c = h.config.load();
                // An app whose supervisor's thread stopped runs nothing: any stored version is
                // newer, and the registry starts it again with it.
                let version = if h.supervisor.connected() {
                    c.version
                } else {
                    i64::MIN
                };
                (c.id.clone(), version)
            })
            .collect();
        let stored = self
            .run(|db| Ok(db.app_versions()?))
            .await
            .map_err(into_db)?;
        let plan = super::sync::plan(&memory, &stored);
        for id in &plan.stop {
            let _ = live.stop.send(stopped(id.clone())).await;
        }
        let wanted: Vec<String> = plan.start.iter().chain(&plan.update).cloned().collect();
        // One query for every app to load (at start-up, all of them). An app deleted since the
        // versions were read has no row: the next round stops it.
        let (loaded, bad) = self
            .run(move |db| {
                let mut configs = Vec::with_capacity(wanted.len());
                let mut bad = Vec::new();
                if wanted.is_empty() {
                    return Ok((configs, bad));
                }
                for (id, row) in db.get_apps(&wanted)? {
                    match row {
                        Ok(config) => configs.push(config),
                        // One row that cannot be read must not keep the others from starting.
                        Err(e) if unreadable_row(&e) => bad.push((id, e.to_string())),
                        Err(e) => return Err(e.into()),
                    }
                }
                Ok((configs, bad))
            })
            .await
            .map_err(into_db)?;
        for (id, error) in bad {
            let version = stored.iter().find(|(i, _)| *i == id).map_or(0, |(_, v)| *v);
            if unreadable.len() < 10_000 && unreadable.insert((id.clone(), version)) {
                tracing::error!(
                    app_id = %id, version, error = %error,
                    "cannot read this app's stored configuration: it is left as it runs (or not \
                     started) until the row is fixed"
                );
            }
        }
        for config in loaded {
            if plan.start.contains(&config.id) {
                let _ = live.start.send(StartApp(config)).await;
            } else {
                let _ = live.update.send(UpdateApp(config)).await;
            }
        }
        let synced = Synced {
            started: plan.start.len(),
            updated: plan.update.len(),
            stopped: plan.stop.len(),
        };
        if synced != Synced::default() {
            tracing::info!(
                started = synced.started,
                updated = synced.updated,
                stopped = synced.stopped,
                "apps loaded from the database"
            );
        }
        Ok(synced)
    }
}

fn into_db(e: AppError) -> DbError {
    match e {
        AppError::Db(e) => e,
        other => DbError::Unavailable(other.to_string()),
    }
}

/// Whether an error concerns one stored row (it cannot be decoded) rather than the database.
fn unreadable_row(e: &DbError) -> bool {
    matches!(
        e,
        DbError::Key(_) | DbError::Query(diesel::result::Error::DeserializationError(_))
    )
}

fn stopped(id: String) -> StopApp {
    StopApp {
        id,
        why: Closing::AppDeleted,
    }
}

fn not_found(e: DbError, id: &str) -> AppError {
    match e {
        DbError::NotFound => AppError::NotFound(id.to_owned()),
        other => AppError::Db(other),
    }
}

/// Reads the stored app, applies `change` and writes it back if nobody wrote in between;
/// otherwise starts again from the newer row. Returns the version changed and the new one.
fn compare_and_swap(
    db: &Db,
    id: &str,
    change: &dyn Fn(&mut AppConfig) -> Result<(), ConfigError>,
) -> Result<(AppConfig, AppConfig), AppError> {
    for _ in 0..MAX_ATTEMPTS {
        let before = db.get_app(id).map_err(|e| not_found(e, id))?;
        let mut after = before.clone();
        change(&mut after)?;
        after.version = before.version + 1;
        if db
            .update_app_if(&after, before.version)
            .map_err(|e| not_found(e, id))?
        {
            return Ok((before, after));
        }
    }
    Err(AppError::Contended)
}

/// The app as the audit log records it: secrets masked, no live counters.
pub fn audited(c: &AppConfig) -> Value {
    let mut value = serde_json::to_value(app_dto(c, 0)).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        map.insert("secret".into(), "***".into());
        map.remove("connections");
    }
    value
}

fn audit(
    db: &Db,
    actor: String,
    action: &str,
    id: &str,
    before: Option<&AppConfig>,
    after: Option<&AppConfig>,
) -> Result<(), AppError> {
    db.insert_audit(&AuditRow::new(
        actor,
        action,
        "app",
        id,
        before.map(audited),
        after.map(audited),
    ))?;
    Ok(())
}

/// The API's view of an app with its open connections on this node.
pub fn app_dto(c: &AppConfig, connections: usize) -> App {
    App {
        id: c.id.clone(),
        name: c.name.clone(),
        key: c.key.clone(),
        secret: c.secret.clone(),
        enabled: c.enabled,
        allowed_origins: c.allowed_origins.clone(),
        client_events: c.client_events,
        require_user_auth: c.require_user_auth,
        user_auth_timeout_secs: c.user_auth_timeout_secs,
        watchlist_events: c.watchlist_events,
        subscription_count_events: c.subscription_count_events,
        limits: c.limits.clone(),
        previous_secret_expires_at: c.previous_secret.as_ref().map(|p| p.expires_at),
        connections: connections as u64,
        version: c.version,
        usage: shared::admin::AppUsage::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::{KeySource, PoolOptions};
    use actix::Actor;

    fn open(dir: &std::path::Path) -> Db {
        let url = dir.join("t.db").display().to_string();
        let keys = KeySource {
            key: None,
            file: dir.join("master.key"),
        };
        Db::open(&url, PoolOptions::default(), &keys).unwrap()
    }

    /// The running server's service and the CLI's, on one database: the CLI's changes reach
    /// memory through `sync`, and an older version never replaces a newer one.
    #[actix_web::test]
    async fn changes_made_without_live_apps_are_synced_in_version_order() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path());
        let directory = Directory::default();
        let registry = AppRegistry::new(
            directory.clone(),
            Arc::default(),
            crate::actors::registry::AppThreads::default(),
            None,
        )
        .start();
        let server = AppService::with_live(
            db.clone(),
            AppLimits::default(),
            LiveApps::new(&registry, directory.clone()),
        );
        let cli = AppService::new(db, AppLimits::default());
        let live = |id: &str| directory.by_id(id).map(|h| (*h.config.load_full()).clone());

        let app = cli.create("cli", "a", &AppPatch::default()).await.unwrap();
        assert!(live(&app.id).is_none(), "the CLI applies nothing itself");
        let synced = server.sync().await.unwrap();
        assert_eq!((synced.started, synced.updated, synced.stopped), (1, 0, 0));
        assert_eq!(live(&app.id).unwrap(), app);

        let v2 = cli.set_enabled("cli", &app.id, false).await.unwrap();
        assert_eq!(v2.version, 2);
        assert_eq!(server.sync().await.unwrap().updated, 1);
        assert_eq!(live(&app.id).unwrap(), v2);
        assert_eq!(server.sync().await.unwrap(), Synced::default());

        // A late apply of version 1 is refused; memory stays at version 2.
        assert!(!registry.send(UpdateApp(app.clone())).await.unwrap());
        assert_eq!(live(&app.id).unwrap().version, 2);

        cli.delete("cli", &app.id).await.unwrap();
        assert_eq!(server.sync().await.unwrap().stopped, 1);
        assert!(live(&app.id).is_none());
    }

    /// An HTTP worker that died took the supervisors on it along: the next sync round starts
    /// its apps again, on the threads still running.
    #[actix_web::test]
    async fn a_sync_round_starts_again_an_app_whose_thread_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path());
        let directory = Directory::default();
        let threads = crate::actors::registry::AppThreads::default();
        let (dying, lasting) = (actix::Arbiter::new(), actix::Arbiter::new());
        threads.add(dying.handle());
        let registry =
            AppRegistry::new(directory.clone(), Arc::default(), threads.clone(), None).start();
        let server = AppService::with_live(
            db,
            AppLimits::default(),
            LiveApps::new(&registry, directory.clone()),
        );
        let app = server.create("t", "a", &AppPatch::default()).await.unwrap();
        let running = directory.by_id(&app.id).unwrap();
        assert!(running.supervisor.connected());
        assert_eq!(server.sync().await.unwrap(), Synced::default());

        dying.stop();
        dying.join().unwrap();
        threads.add(lasting.handle());
        assert!(!running.supervisor.connected());
        assert_eq!(server.sync().await.unwrap().updated, 1);
        let again = directory.by_id(&app.id).unwrap();
        assert!(again.supervisor.connected(), "started again");
        assert_eq!(*again.config.load_full(), app);
        assert_eq!(server.sync().await.unwrap(), Synced::default());
        lasting.stop();
    }

    #[test]
    fn the_audit_record_masks_the_secret() {
        let app = AppConfig::generate("a");
        let value = audited(&app);
        let text = value.to_string();
        assert!(text.contains("\"secret\":\"***\""));
        assert!(!text.contains(&app.secret));
        assert!(value.get("connections").is_none());
        assert_eq!(value["version"], 1);
    }
}
