//! The `reverb-pusher` command: `serve` (the default), `app ...` ([`apps`]), `user create`,
//! `migrate` and `rotate-master-key`. It lives in the library, so that `main.rs` is one line
//! and the tests run the very same commands in-process ([`run`]) and check their exit codes.

pub mod apps;

use std::ffi::OsString;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use figment::providers::Serialized;
use serde::Serialize;

use crate::db::crypto::MasterKey;
use crate::db::{self, Db};
use crate::settings::Settings;
use crate::{admin, telemetry};
use apps::AppCommand;

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

/// Runs the command line `args` (the program name first) and says how it ended: 0 on success,
/// 1 when the command failed (the message is on standard error), 2 for unusable settings or
/// arguments.
pub fn run<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
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
        Command::App { command } => apps::app_command(&settings, command),
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

pub(crate) fn open_db(settings: &Settings) -> Result<Db, String> {
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
        let server = crate::start(settings, listener)
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
            apps::print_credentials(&app);
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
    async fn next_stop(&mut self, server: &crate::Server) {
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
