//! The `app` commands: create (with generated or kept credentials), list, enable, disable,
//! rotate-secret, set, delete, import and export. They go through `AppService` without an
//! actor system (store and audit only); a running server picks each change up within
//! `app_sync_interval_ms`.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use serde::Serialize;

use crate::apps::transfer::{self, Format};
use crate::apps::{AppConfig, AppError, AppService, ChosenCredentials};
use crate::settings::Settings;

#[derive(Subcommand)]
pub enum AppCommand {
    /// Create an app with the default limits and print its credentials: fresh ones, or the
    /// ones it keeps from another server (`--id`, `--key`, `--secret`).
    Create {
        #[arg(long)]
        name: String,
        /// Keep this app id (letters, digits, '_', '.', '-'; at most 32).
        #[arg(long)]
        id: Option<String>,
        /// Keep this app key (letters, digits, '_', '.', '-'; at most 64).
        #[arg(long)]
        key: Option<String>,
        /// Keep this app secret (8 to 128 printable ASCII characters, no spaces).
        #[arg(long)]
        secret: Option<String>,
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
    /// Create or update apps (by id) from another server's file, keeping their credentials,
    /// and print what could not be mapped. Nothing changes if any app is in conflict or invalid.
    Import {
        /// The file (`-` for standard input).
        file: PathBuf,
        /// The file's format (detected when left out).
        #[arg(long, value_parser = parse_format)]
        format: Option<Format>,
        /// Show the plan; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write apps in another server's format (to standard output unless `--output`).
    Export {
        #[arg(long, value_parser = parse_format)]
        format: Format,
        /// Include the secrets (left out otherwise).
        #[arg(long)]
        with_secrets: bool,
        /// Only this app (repeatable).
        #[arg(long = "app", value_name = "ID")]
        apps: Vec<String>,
        /// Write to this file (created 0600 when it holds secrets).
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
}

fn parse_format(name: &str) -> Result<Format, String> {
    Format::parse(name).ok_or_else(|| format!("one of: {}", transfer::format_names()))
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

pub(crate) fn app_command(settings: &Settings, command: AppCommand) -> Result<(), String> {
    let db = super::open_db(settings)?;
    let apps = AppService::new(db, settings.default_app_limits.clone());
    // The service is async (it runs database work on a blocking pool); the CLI waits for it.
    actix_web::rt::System::new().block_on(run_app_command(&apps, command))
}

async fn run_app_command(apps: &AppService, command: AppCommand) -> Result<(), String> {
    const ACTOR: &str = "cli";
    match command {
        AppCommand::Create {
            name,
            id,
            key,
            secret,
            json,
        } => {
            let credentials = ChosenCredentials { id, key, secret };
            let app = apps
                .create_with(
                    ACTOR,
                    &name,
                    &credentials,
                    &shared::admin::AppPatch::default(),
                )
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
        AppCommand::Import {
            file,
            format,
            dry_run,
            json,
        } => import(apps, &file, format, dry_run, json).await?,
        AppCommand::Export {
            format,
            with_secrets,
            apps: only,
            output,
        } => export(apps, format, with_secrets, &only, output.as_deref()).await?,
    }
    Ok(())
}

async fn import(
    apps: &AppService,
    file: &Path,
    format: Option<Format>,
    dry_run: bool,
    json: bool,
) -> Result<(), String> {
    let text = if file == Path::new("-") {
        std::io::read_to_string(std::io::stdin())
            .map_err(|e| format!("cannot read standard input: {e}"))?
    } else {
        std::fs::read_to_string(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?
    };
    let report = apps
        .import("cli", &text, format, dry_run)
        .await
        .map_err(|e| e.to_string())?;
    if json {
        println!("{}", serde_json::to_string(&report).unwrap_or_default());
    } else {
        println!("{}", transfer::apply::describe(&report));
    }
    match report.problems() {
        0 if report.applied => {
            if !json {
                println!("A running server picks the changes up within a few seconds.");
            }
            Ok(())
        }
        0 => Ok(()),
        n if report.applied => Err(format!(
            "{n} app(s) changed during the import and were not imported; run it again"
        )),
        n => Err(format!(
            "{n} app(s) cannot be imported as they are; nothing was changed"
        )),
    }
}

async fn export(
    apps: &AppService,
    format: Format,
    with_secrets: bool,
    only: &[String],
    output: Option<&Path>,
) -> Result<(), String> {
    let mut list = apps.list().await.map_err(app_error)?;
    if !only.is_empty() {
        if let Some(missing) = only.iter().find(|id| !list.iter().any(|a| &a.id == *id)) {
            return Err(format!("no app with id {missing}"));
        }
        list.retain(|a| only.contains(&a.id));
    }
    let text = transfer::export(&list, format, with_secrets).map_err(|e| e.to_string())?;
    let Some(path) = output else {
        print!("{text}");
        return Ok(());
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if with_secrets {
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    }
    std::io::Write::write_all(
        &mut options
            .open(path)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?,
        text.as_bytes(),
    )
    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    eprintln!(
        "{} app(s) written to {} as {format}",
        list.len(),
        path.display()
    );
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

pub(crate) fn print_credentials(app: &AppConfig) {
    println!("app_id:     {}", app.id);
    println!("app_key:    {}", app.key);
    println!("app_secret: {}", app.secret);
}
