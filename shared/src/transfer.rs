//! The vocabulary of moving apps in and out: the file formats of the servers people leave
//! ([`Format`]), and the admin API's import request and report. The parsing and planning
//! themselves live in the server (`apps::transfer`); the panel only needs the names.

use serde::{Deserialize, Serialize};

#[cfg(feature = "openapi")]
use utoipa::ToSchema;

/// A file format `app import` reads and `app export` writes.
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// soketi's JSON config: `{"appManager": {"array": {"apps": [...]}}}`, camel case.
    Soketi,
    /// soketi's SQL `apps` table exported as a JSON array of rows (snake case columns).
    SoketiSqlJson,
    /// soketi's SQL `apps` table exported as CSV with a header row.
    SoketiSqlCsv,
    /// sockudo's config: `{"app_manager": {"array": {"apps": [...]}}}`, snake case.
    Sockudo,
    /// Laravel Reverb's environment: `REVERB_APP_ID`, `REVERB_APP_KEY`, `REVERB_APP_SECRET`...
    ReverbEnv,
    /// The `apps` array of Reverb's `config/reverb.php`, as JSON (`app_id`, `key`, `secret`...).
    ReverbJson,
    /// The `apps` array of laravel-websockets' `config/websockets.php`, as JSON.
    LaravelWebsockets,
    /// A plain CSV `id,key,secret,name` (Pusher apps, whose credentials are in its dashboard).
    PusherCsv,
}

impl Format {
    pub const ALL: [Format; 8] = [
        Format::Soketi,
        Format::SoketiSqlJson,
        Format::SoketiSqlCsv,
        Format::Sockudo,
        Format::ReverbEnv,
        Format::ReverbJson,
        Format::LaravelWebsockets,
        Format::PusherCsv,
    ];

    /// The name on the command line and in the API (`soketi-sql-json`).
    pub fn name(self) -> &'static str {
        match self {
            Format::Soketi => "soketi",
            Format::SoketiSqlJson => "soketi-sql-json",
            Format::SoketiSqlCsv => "soketi-sql-csv",
            Format::Sockudo => "sockudo",
            Format::ReverbEnv => "reverb-env",
            Format::ReverbJson => "reverb-json",
            Format::LaravelWebsockets => "laravel-websockets",
            Format::PusherCsv => "pusher-csv",
        }
    }

    /// What people read in the panel.
    pub fn label(self) -> &'static str {
        match self {
            Format::Soketi => "soketi config (appManager.array.apps)",
            Format::SoketiSqlJson => "soketi SQL apps table, as JSON rows",
            Format::SoketiSqlCsv => "soketi SQL apps table, as CSV",
            Format::Sockudo => "sockudo config (app_manager.array.apps)",
            Format::ReverbEnv => "Laravel Reverb .env (REVERB_APP_*)",
            Format::ReverbJson => "Laravel Reverb config/reverb.php apps, as JSON",
            Format::LaravelWebsockets => "laravel-websockets apps, as JSON",
            Format::PusherCsv => "CSV id,key,secret,name (Pusher)",
        }
    }

    /// The format named `name`, if any.
    pub fn parse(name: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.name() == name.trim())
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Import apps from the text of a file.
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ImportRequest {
    /// The file's content.
    pub text: String,
    /// The format; detected from the content when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<Format>,
    /// Only plan: change nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// What an import does (or did) to one app.
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImportAction {
    Create,
    Update,
    /// The stored app already matches the file.
    Unchanged,
    /// Its id or key belongs to another app (or to another entry of the file).
    Conflict,
    /// The entry cannot be imported as it is (see `message`).
    Invalid,
}

impl ImportAction {
    /// Whether the entry keeps the import from being applied.
    pub fn is_problem(self) -> bool {
        matches!(self, ImportAction::Conflict | ImportAction::Invalid)
    }
}

/// One app of an import: what happens to it, which settings change, and what the file says
/// that this server cannot map. Never carries a secret.
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportedAppReport {
    /// The app id (or where the entry is in the file when it has none).
    pub id: String,
    pub name: String,
    pub key: String,
    pub action: ImportAction,
    /// The settings an update changes (`secret` is named, never shown).
    #[serde(default)]
    pub changes: Vec<String>,
    /// Settings of the file that were not imported, each with the value and why.
    #[serde(default)]
    pub unmapped: Vec<String>,
    /// Why a conflicting or invalid entry cannot be imported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The plan of an import, or its result.
#[cfg_attr(feature = "openapi", derive(ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportReport {
    pub format: Format,
    pub dry_run: bool,
    /// Whether the changes were made (false for a dry run and for a plan with problems).
    pub applied: bool,
    pub apps: Vec<ImportedAppReport>,
}

impl ImportReport {
    /// How many entries keep the import from being applied.
    pub fn problems(&self) -> usize {
        self.apps.iter().filter(|a| a.action.is_problem()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_names_round_trip_and_match_serde() {
        for format in Format::ALL {
            assert_eq!(Format::parse(format.name()), Some(format));
            assert_eq!(
                serde_json::to_value(format).unwrap(),
                serde_json::Value::String(format.name().into())
            );
        }
        assert_eq!(Format::parse("nope"), None);
    }
}
