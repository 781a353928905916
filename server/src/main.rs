//! The `reverb-pusher` command: `serve` (the default), `app create|list|enable|disable|
//! rotate-secret|set|delete`, `user create`, `migrate` and `rotate-master-key`.
//!
//! App commands go through `AppService` without an actor system (store and audit only); a
//! running server picks the change up within `app_sync_interval_ms`.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use figment::providers::Serialized;
use reverb_pusher::apps::{AppConfig, AppError, AppService};
use reverb_pusher::db::crypto::MasterKey;
use reverb_pusher::db::{self, Db};
use reverb_pusher::settings::Settings;
use reverb_pusher::{admin, telemetry};
use serde::Serialize;
use std::path::Path;

#[derive(Parser)]
#[command(
    name = "reverb-pusher",
    version,
    about = "Self-hosted, multi-app Pusher Channels server"
)]
struct Cli {
    /// Settings file (TOML). Defaults to ./reverb-pusher.toml when it exists.
    #[arg(long, global = true, env = "REVERB_PUSHER_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    overrides: Overrides,
    #[command(subcommand)]
    command: Option<Command>,
}

/// Flags that override the settings file and environment.
#[derive(clap::Args, Serialize)]
struct Overrides {
    /// Address to listen on.
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    host: Option<String>,
    /// Port to listen on (0 picks a free one).
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    port: Option<u16>,
    /// Database URL, e.g. `sqlite://data/reverb-pusher.db`
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    database_url: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Manage apps.
    App {
        #[command(subcommand)]
        command: AppCommand,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Re-encrypt every stored secret under a new master key (stop the servers first).
    RotateMasterKey,
    /// Manage admin users of the admin panel and API.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create an admin user. The password is read from standard input (one line).
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
    },
}

#[derive(Subcommand)]
enum AppCommand {
    /// Create an app with fresh credentials and the default limits, and print them.
    Create {
        #[arg(long)]
        name: String,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List apps.
    List {
        /// Include each app's secret.
        #[arg(long)]
        secrets: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Let an app accept connections again.
    Enable { id: String },
    /// Refuse an app's connections (open ones are closed with 4003).
    Disable { id: String },
    /// Replace an app's secret and print the new credentials.
    RotateSecret {
        id: String,
        /// Seconds during which the old secret keeps signing.
        #[arg(long, default_value_t = 0)]
        grace_secs: u32,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Change an app's name or limits, e.g. `--limit max_connections=500`.
    Set {
        id: String,
        #[arg(long)]
        name: Option<String>,
        /// `FIELD=VALUE` for a limit (repeatable); fields as in the admin API's `limits`.
        #[arg(long = "limit", value_name = "FIELD=VALUE")]
        limits: Vec<String>,
    },
    /// Delete an app (a running server closes its connections with 4001).
    Delete { id: String },
}

#[derive(Serialize)]
struct Credentials<'a> {
    id: &'a str,
    name: &'a str,
    key: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<&'a str>,
    enabled: bool,
}

impl<'a> Credentials<'a> {
    fn of(app: &'a AppConfig, secret: bool) -> Self {
        Self {
            id: &app.id,
            name: &app.name,
            key: &app.key,
            secret: secret.then_some(app.secret.as_str()),
            enabled: app.enabled,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let figment =
        Settings::figment(cli.config.as_deref()).merge(Serialized::defaults(&cli.overrides));
    let settings = match Settings::from_figment(&figment) {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings),
        Command::Migrate => db::open_pool(&settings.database_url, settings.pool_options())
            .map(|_| println!("database is up to date"))
            .map_err(|e| e.to_string()),
        Command::RotateMasterKey => rotate_master_key(&settings),
        Command::App { command } => app_command(&settings, command),
        Command::User { command } => user_command(&settings, command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn open_db(settings: &Settings) -> Result<Db, String> {
    let keys = settings.key_source().map_err(|e| e.to_string())?;
    Db::open(&settings.database_url, settings.pool_options(), &keys).map_err(|e| e.to_string())
}

/// Re-encrypts every secret under a new master key. Stop the servers first: a running server
/// still holds the old key.
fn rotate_master_key(settings: &Settings) -> Result<(), String> {
    let db = open_db(settings)?;
    let new = MasterKey::generate();
    if settings.master_key.is_some() {
        db.rotate_master_key(new.clone())
            .map_err(|e| e.to_string())?;
        println!(
            "Secrets re-encrypted. Set this as the new master_key (REVERB_PUSHER_MASTER_KEY):"
        );
        println!("{}", new.to_base64());
        return Ok(());
    }
    let file = Path::new(&settings.master_key_file);
    let staged = file.with_extension("key.new");
    let _ = std::fs::remove_file(&staged);
    // The new key is on disk before the database depends on it, so a crash cannot lose it.
    new.write_new_file(&staged).map_err(|e| e.to_string())?;
    db.rotate_master_key(new).map_err(|e| e.to_string())?;
    let old = file.with_extension("key.old");
    std::fs::rename(file, &old).map_err(|e| format!("cannot move the old key aside: {e}"))?;
    std::fs::rename(&staged, file).map_err(|e| format!("cannot install the new key: {e}"))?;
    println!(
        "Secrets re-encrypted under a new master key in {}; the old key is kept in {} \
         until you delete it.",
        file.display(),
        old.display()
    );
    Ok(())
}

fn user_command(settings: &Settings, command: UserCommand) -> Result<(), String> {
    let UserCommand::Create { email, name } = command;
    let mut password = String::new();
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        eprint!("Password for {email}: ");
    }
    std::io::stdin()
        .read_line(&mut password)
        .map_err(|e| e.to_string())?;
    let password = password.trim_end_matches(['\r', '\n']);
    let (email, name) =
        admin::users::validated_user(&email, &name, password).map_err(|e| e.message)?;
    let db = open_db(settings)?;
    let user = admin::users::new_user(email, name, password);
    db.create_user(&user, "cli".into()).map_err(|e| match e {
        db::DbError::Conflict => "a user with this email exists already".to_owned(),
        other => other.to_string(),
    })?;
    println!("created admin user {} ({})", user.email, user.id);
    Ok(())
}

/// Error text for an app command (a refused value's message names its field).
fn app_error(e: AppError) -> String {
    e.to_string()
}

/// A `--limit FIELD=VALUE` argument as a patch entry.
fn limit_arg(patch: &mut shared::admin::AppLimitsPatch, arg: &str) -> Result<(), String> {
    let (field, value) = arg
        .split_once('=')
        .ok_or_else(|| format!("--limit {arg}: use FIELD=VALUE"))?;
    let value: u32 = value
        .trim()
        .parse()
        .map_err(|_| format!("--limit {arg}: the value must be a whole number"))?;
    if !patch.set(field.trim(), value) {
        let known: Vec<&str> = shared::limits::LIMITS.iter().map(|l| l.field).collect();
        return Err(format!(
            "--limit {arg}: no such limit (known: {})",
            known.join(", ")
        ));
    }
    Ok(())
}

fn app_command(settings: &Settings, command: AppCommand) -> Result<(), String> {
    let db = open_db(settings)?;
    let apps = AppService::new(db, settings.default_app_limits.clone());
    // The service is async (it runs database work on a blocking pool); the CLI waits for it.
    actix_web::rt::System::new().block_on(run_app_command(&apps, command))
}

async fn run_app_command(apps: &AppService, command: AppCommand) -> Result<(), String> {
    const ACTOR: &str = "cli";
    match command {
        AppCommand::Create { name, json } => {
            let app = apps
                .create(ACTOR, &name, &shared::admin::AppPatch::default())
                .await
                .map_err(app_error)?;
            show_credentials(&app, json);
            if !json {
                println!("A running server picks the new app up within a few seconds.");
            }
        }
        AppCommand::List { secrets, json } => {
            let apps = apps.list().await.map_err(app_error)?;
            if json {
                let list: Vec<_> = apps.iter().map(|a| Credentials::of(a, secrets)).collect();
                println!("{}", serde_json::to_string(&list).unwrap_or_default());
            } else {
                for app in &apps {
                    let secret = if secrets {
                        app.secret.as_str()
                    } else {
                        "(use --secrets)"
                    };
                    println!(
                        "{}  name={}  key={}  secret={}  enabled={}",
                        app.id, app.name, app.key, secret, app.enabled
                    );
                }
            }
        }
        AppCommand::Enable { id } => {
            apps.set_enabled(ACTOR, &id, true)
                .await
                .map_err(app_error)?;
            println!("app {id} enabled");
        }
        AppCommand::Disable { id } => {
            apps.set_enabled(ACTOR, &id, false)
                .await
                .map_err(app_error)?;
            println!("app {id} disabled");
        }
        AppCommand::RotateSecret {
            id,
            grace_secs,
            json,
        } => {
            let app = apps
                .rotate_secret(ACTOR, &id, grace_secs)
                .await
                .map_err(app_error)?;
            show_credentials(&app, json);
        }
        AppCommand::Set { id, name, limits } => {
            let mut patch = shared::admin::AppPatch {
                name,
                ..Default::default()
            };
            if !limits.is_empty() {
                let mut changes = shared::admin::AppLimitsPatch::default();
                for arg in &limits {
                    limit_arg(&mut changes, arg)?;
                }
                patch.limits = Some(changes);
            }
            let app = apps.update(ACTOR, &id, patch).await.map_err(app_error)?;
            println!("app {} changed (version {})", app.id, app.version);
        }
        AppCommand::Delete { id } => {
            apps.delete(ACTOR, &id).await.map_err(app_error)?;
            println!("app {id} deleted");
        }
    }
    Ok(())
}

/// An app's credentials as one JSON object (`--json`, for scripts) or for people.
fn show_credentials(app: &AppConfig, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string(&Credentials::of(app, true)).unwrap_or_default()
        );
    } else {
        print_credentials(app);
    }
}

fn print_credentials(app: &AppConfig) {
    println!("app_id:     {}", app.id);
    println!("app_key:    {}", app.key);
    println!("app_secret: {}", app.secret);
}

/// Raises the soft open-file limit to the hard one (each connection holds a descriptor) and,
/// when no per-node cap is configured, derives one from it so that the process refuses new
/// connections with 4100 instead of failing to accept them.
fn raise_file_limit(settings: &mut Settings) {
    /// Descriptors kept for the database pool, log files, listeners and the like.
    const RESERVE: u64 = 256;
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => {
            if limit < 4096 {
                tracing::warn!(limit, "the open-file limit is low and caps connections; raise it (LimitNOFILE= in systemd, ulimit -n)");
            }
            if settings.max_connections == 0 {
                settings.max_connections =
                    usize::try_from(limit.saturating_sub(RESERVE)).unwrap_or(usize::MAX);
                tracing::info!(
                    limit,
                    max_connections = settings.max_connections,
                    "per-node connection cap from the open-file limit"
                );
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot read or raise the open-file limit"),
    }
}

fn serve(mut settings: Settings) -> Result<(), String> {
    telemetry::init(&settings);
    raise_file_limit(&mut settings);
    for name in Settings::unknown_env_vars() {
        tracing::warn!(variable = %name, "environment variable names no setting; ignored");
    }
    let listener = TcpListener::bind((settings.host.as_str(), settings.port))
        .map_err(|e| format!("cannot listen on {}:{}: {e}", settings.host, settings.port))?;
    actix_web::rt::System::new().block_on(async move {
        let server = reverb_pusher::start(settings, listener)
            .await
            .map_err(|e| e.to_string())?;
        let apps = server.directory.all();
        if apps.is_empty() {
            // First run: hand the user working credentials at once. Printed to the terminal
            // (not the log) because it contains the secret.
            let app = server
                .create_app("default")
                .await
                .map_err(|e| e.to_string())?;
            println!("\nFirst start: created the app \"default\". Its credentials:\n");
            print_credentials(&app);
            println!(
                "\nConnect pusher-js to ws://HOST:{}/app/{} (see README). \
                 `reverb-pusher app list --secrets` shows them again.\n",
                server.addr.port(),
                app.key
            );
        }
        if server.admin.setup.current().is_some() {
            println!(
                "Admin panel: {}://{}/admin/ (create the first account with the setup token \
                 shown above or in the file it names; it works for an hour, then opening the \
                 panel issues a new one).\n",
                if server.uses_tls() { "https" } else { "http" },
                server.addr
            );
        }
        let mut signals = Signals::new();
        signals.next_stop(&server).await;
        tracing::info!("shutting down: telling clients to reconnect (4200)");
        // A second SIGTERM/SIGINT means "now": the drain is abandoned.
        tokio::select! {
            () = server.shutdown() => Ok(()),
            () = signals.next_stop_only() => {
                tracing::warn!("second stop signal: exiting without finishing the drain");
                // At once: returning would wait for the runtime's blocking tasks (a database
                // call can wait up to its timeout).
                std::process::exit(1);
            }
        }
    })
}

/// The process's stop and reload signals, registered once so that none is missed between
/// two waits.
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    hangup: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Self {
                term: signal(SignalKind::terminate()).expect("SIGTERM handler"),
                interrupt: signal(SignalKind::interrupt()).expect("SIGINT handler"),
                hangup: signal(SignalKind::hangup()).expect("SIGHUP handler"),
            }
        }
        #[cfg(not(unix))]
        Self {}
    }

    /// Waits for SIGTERM or SIGINT; SIGHUP reloads the TLS certificate meanwhile.
    async fn next_stop(&mut self, server: &reverb_pusher::Server) {
        #[cfg(unix)]
        loop {
            tokio::select! {
                _ = self.interrupt.recv() => return,
                _ = self.term.recv() => return,
                _ = self.hangup.recv() => server.reload_tls(),
            }
        }
        #[cfg(not(unix))]
        {
            let _ = server;
            let _ = tokio::signal::ctrl_c().await;
        }
    }

    /// Waits for SIGTERM or SIGINT only (during the drain, when the server is moved away).
    async fn next_stop_only(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.term.recv() => {}
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
