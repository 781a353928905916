//! Moving apps in from the servers people leave, and out again: `app import` / `app export`
//! and the panel's upload. This module owns the pure part, unit-tested per format without a
//! database: reading a file into [`ImportedApp`]s ([`parse`], with [`detect`] when the format is
//! not given), writing apps back in a format ([`export`]), and deciding what an import does to
//! the stored apps ([`plan`]). Applying a plan goes through `AppService` ([`apply`]), so every
//! imported change is stored, audited and applied live like any other.
//!
//! The formats (`shared::transfer::Format`): soketi's config and its SQL `apps` table as JSON
//! or CSV, sockudo's config ([`soketi`], one family: the same settings, camel case or
//! snake case), Laravel Reverb's `.env` and `config/reverb.php` apps as JSON, laravel-websockets'
//! apps as JSON ([`laravel`]), and a plain `id,key,secret,name` CSV for Pusher ([`csv`]).
//!
//! Every setting of a file either maps to one of ours or is reported, per app, as unmapped
//! with its value and the reason, so nothing is dropped silently.

pub mod apply;
pub mod csv;
pub mod fields;
pub mod laravel;
pub mod plan;
pub mod soketi;

use serde_json::Value;
use shared::admin::AppPatch;
pub use shared::transfer::Format;

use super::AppConfig;

/// One app as a file describes it, in our terms.
#[derive(Clone, PartialEq, Eq)]
pub struct ImportedApp {
    pub id: String,
    pub key: String,
    /// Absent when the file has none (an export made without `--with-secrets`).
    pub secret: Option<String>,
    /// Every setting the file gives that we map; absent ones stay as they are.
    pub settings: AppPatch,
    /// `field = value: why` for each setting of the file that is not imported.
    pub unmapped: Vec<String>,
}

impl std::fmt::Debug for ImportedApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportedApp")
            .field("id", &self.id)
            .field("key", &self.key)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("settings", &self.settings)
            .field("unmapped", &self.unmapped)
            .finish()
    }
}

/// An entry of a file that cannot become an app: where it is, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The entry's id, or its position (`app 3`) when it has none.
    pub label: String,
    pub message: String,
}

/// One entry of a file.
pub type Entry = Result<ImportedApp, Refused>;

/// The file as a whole cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransferError {
    #[error("{0}")]
    Unreadable(String),
    #[error("cannot tell the format of this file: {0}; name it (--format, one of: {names})", names = format_names())]
    Undetected(String),
    #[error("{0}")]
    Unsupported(String),
}

/// Every format name, for messages.
pub fn format_names() -> String {
    Format::ALL
        .iter()
        .map(|f| f.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reads `text` as `format` (detected when `None`).
pub fn parse(text: &str, format: Option<Format>) -> Result<(Format, Vec<Entry>), TransferError> {
    let format = match format {
        Some(f) => f,
        None => detect(text)?,
    };
    let entries = match format {
        Format::Soketi | Format::SoketiSqlJson | Format::SoketiSqlCsv | Format::Sockudo => {
            soketi::parse(text, format)?
        }
        Format::ReverbEnv => laravel::parse_reverb_env(text)?,
        Format::ReverbJson => laravel::parse_reverb_json(text)?,
        Format::LaravelWebsockets => laravel::parse_websockets(text)?,
        Format::PusherCsv => csv::parse_pusher(text)?,
    };
    if entries.is_empty() {
        return Err(TransferError::Unreadable(format!(
            "the file has no apps (read as {format})"
        )));
    }
    Ok((format, entries))
}

/// Writes `apps` in `format`. Secrets are left out unless `with_secrets`.
pub fn export(
    apps: &[AppConfig],
    format: Format,
    with_secrets: bool,
) -> Result<String, TransferError> {
    match format {
        Format::Soketi | Format::SoketiSqlJson | Format::SoketiSqlCsv | Format::Sockudo => {
            Ok(soketi::render(apps, format, with_secrets))
        }
        Format::ReverbEnv => laravel::render_reverb_env(apps, with_secrets),
        Format::ReverbJson => Ok(laravel::render_reverb_json(apps, with_secrets)),
        Format::LaravelWebsockets => Ok(laravel::render_websockets(apps, with_secrets)),
        Format::PusherCsv => Ok(csv::render_pusher(apps, with_secrets)),
    }
}

/// The format of `text`, when only one fits.
pub fn detect(text: &str) -> Result<Format, TransferError> {
    let trimmed = text.trim_start_matches('\u{feff}').trim();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        let value: Value = serde_json::from_str(trimmed)
            .map_err(|e| TransferError::Unreadable(format!("the file is not valid JSON: {e}")))?;
        return detect_json(&value);
    }
    if trimmed.lines().any(|l| {
        let l = l.trim_start().trim_start_matches("export ").trim_start();
        l.starts_with("REVERB_APP_ID=") || l.starts_with("REVERB_APP_KEY=")
    }) {
        return Ok(Format::ReverbEnv);
    }
    let header = trimmed.lines().next().unwrap_or_default();
    let columns: Vec<String> = header
        .split(',')
        .map(|c| fields::norm(c.trim().trim_matches('"')))
        .collect();
    if columns.iter().any(|c| c == "key") && columns.iter().any(|c| c == "id") {
        let plain = columns
            .iter()
            .all(|c| matches!(c.as_str(), "id" | "key" | "secret" | "name"));
        return Ok(if plain {
            Format::PusherCsv
        } else {
            Format::SoketiSqlCsv
        });
    }
    if header.split(',').count() >= 2 && !header.contains('=') {
        // A header-less CSV is the plain list, read by position.
        return Ok(Format::PusherCsv);
    }
    Err(TransferError::Undetected(
        "it is neither JSON, a Reverb .env nor CSV with a header".into(),
    ))
}

fn detect_json(value: &Value) -> Result<Format, TransferError> {
    if let Value::Object(map) = value {
        if map.contains_key("appManager") {
            return Ok(Format::Soketi);
        }
        if map.contains_key("app_manager") {
            return Ok(Format::Sockudo);
        }
    }
    let Some(first) = fields::app_list(value).and_then(|apps| apps.first()) else {
        return Err(TransferError::Undetected(
            "JSON without appManager, app_manager or a list of apps".into(),
        ));
    };
    let Some(app) = first.as_object() else {
        return Err(TransferError::Unreadable(
            "the apps must be JSON objects".into(),
        ));
    };
    let has = |name: &str| app.keys().any(|k| fields::norm(k) == name);
    if has("appid") {
        return Ok(Format::ReverbJson);
    }
    if has("capacity") || has("enablestatistics") || has("name") || has("path") {
        return Ok(Format::LaravelWebsockets);
    }
    if has("maxconnections") || has("enabled") || app.keys().any(|k| k.starts_with("max_")) {
        return Ok(Format::SoketiSqlJson);
    }
    Err(TransferError::Undetected(
        "a list of apps that could be soketi SQL rows or laravel-websockets apps".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_detected_when_only_one_fits() {
        let cases = [
            (r#"{"appManager":{"array":{"apps":[]}}}"#, Format::Soketi),
            (r#"{"app_manager":{"array":{"apps":[]}}}"#, Format::Sockudo),
            (
                r#"[{"id":"1","key":"k","max_connections":-1}]"#,
                Format::SoketiSqlJson,
            ),
            (r#"[{"app_id":"1","key":"k"}]"#, Format::ReverbJson),
            (
                r#"{"apps":[{"id":"1","name":"a","key":"k"}]}"#,
                Format::LaravelWebsockets,
            ),
            ("# env\nexport REVERB_APP_ID=1\n", Format::ReverbEnv),
            ("id,key,secret,name\n1,k,s,n\n", Format::PusherCsv),
            ("1,k,s,n\n", Format::PusherCsv),
            (
                "id,key,secret,max_connections\n1,k,s,-1\n",
                Format::SoketiSqlCsv,
            ),
        ];
        for (text, format) in cases {
            assert_eq!(detect(text), Ok(format), "{text}");
        }
    }

    #[test]
    fn ambiguous_or_unreadable_files_name_the_way_out() {
        let err = detect(r#"[{"id":"1","key":"k","secret":"s"}]"#).unwrap_err();
        assert!(err.to_string().contains("--format"), "{err}");
        assert!(matches!(
            detect("{not json"),
            Err(TransferError::Unreadable(_))
        ));
        assert!(matches!(detect("hello"), Err(TransferError::Undetected(_))));
        assert!(parse(r#"{"appManager":{"array":{"apps":[]}}}"#, None).is_err());
    }
}
