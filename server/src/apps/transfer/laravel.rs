//! The Laravel servers: Reverb's environment (`REVERB_APP_ID`, `REVERB_APP_KEY`,
//! `REVERB_APP_SECRET`... one app) and the `apps` of its `config/reverb.php` as JSON (`app_id`,
//! `allowed_origins`, `max_message_size`...), and laravel-websockets' `apps` array as JSON
//! (`id`, `name`, `capacity`, `enable_client_messages`...). Laravel keeps these in PHP; people
//! give us the array as JSON (`php artisan tinker` → `json_encode(config('reverb.apps.apps'))`).

use std::fmt::Write;

use serde_json::{json, Map, Value};

use super::fields::{self, credentials, Builder, Fields, Scale, Target};
use super::{Entry, Refused, TransferError};
use crate::apps::AppConfig;

/// Reverb's per-app settings; names as in `config/reverb.php` and as `REVERB_APP_*` variables.
const REVERB_MAPPED: &[(&[&str], Target)] = &[
    (&["name"], Target::Name),
    (
        &[
            "allowedorigins",
            "reverballowedorigins",
            "reverbappallowedorigins",
        ],
        Target::AllowedOrigins,
    ),
    (
        &["maxmessagesize", "reverbappmaxmessagesize"],
        Target::Limit("max_event_payload_bytes", Scale::Same),
    ),
    (
        &["maxconnections", "reverbappmaxconnections"],
        Target::Limit("max_connections", Scale::Same),
    ),
];

const REVERB_SERVER_WIDE: &[&[&str]] = &[
    &["pinginterval", "reverbapppinginterval"],
    &["activitytimeout", "reverbappactivitytimeout"],
];

fn refuse(id: &str) -> impl Fn(String) -> Refused + '_ {
    move |message| Refused {
        label: id.to_owned(),
        message,
    }
}

fn reverb_entry(mut row: Fields, position: usize, env: bool) -> Entry {
    let (id, key, secret) = credentials(&mut row, position, &["appid", "id", "reverbappid"])?;
    let mut app = Builder::new();
    for (names, target) in REVERB_MAPPED {
        if let Some((name, v)) = row.take(names) {
            app.set(*target, &name, &v).map_err(refuse(&id))?;
        }
    }
    if let Some((name, v)) = row.take(&["acceptclienteventsfrom"]) {
        let from = fields::text(&name, &v).map_err(refuse(&id))?;
        let allowed = match from.as_str() {
            "none" => false,
            // Client events here always need a private or presence channel the sender joined.
            "members" | "all" => true,
            other => {
                return Err(refuse(&id)(format!(
                    "{name} must be members, all or none, not {other:?}"
                )))
            }
        };
        app.settings.client_events = Some(allowed);
    }
    for names in REVERB_SERVER_WIDE {
        if let Some((name, v)) = row.take(names) {
            app.unmapped(
                &name,
                &v,
                "server-wide here (activity_timeout in the settings)",
            );
        }
    }
    let why = if env {
        "a Reverb server or Echo setting, not an app's"
    } else {
        "not a setting of this server"
    };
    for (name, v) in row.rest() {
        app.unmapped(&name, &v, why);
    }
    Ok(app.finish(id, key, secret))
}

/// The `apps` of `config/reverb.php`, as JSON: a list, `{"apps": [...]}` or
/// `{"apps": {"provider": ..., "apps": [...]}}`.
pub fn parse_reverb_json(text: &str) -> Result<Vec<Entry>, TransferError> {
    Ok(fields::objects(fields::json_apps(text, &[])?)?
        .into_iter()
        .enumerate()
        .map(|(i, row)| reverb_entry(row, i, false))
        .collect())
}

/// One `.env` value: bare (an inline ` #` starts a comment), 'literal' or "with \" escapes".
fn env_value(raw: &str) -> String {
    let raw = raw.trim();
    if let Some(inner) = raw.strip_prefix('\'') {
        return inner.split('\'').next().unwrap_or_default().to_owned();
    }
    if let Some(inner) = raw.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            match c {
                '"' => break,
                '\\' => match chars.next() {
                    Some('n') => out.push('\n'),
                    Some(other) => out.push(other),
                    None => {}
                },
                c => out.push(c),
            }
        }
        return out;
    }
    raw.split(" #").next().unwrap_or_default().trim().to_owned()
}

/// Reverb's environment: the `REVERB_*` variables of a `.env` file (others are ignored).
pub fn parse_reverb_env(text: &str) -> Result<Vec<Entry>, TransferError> {
    let mut vars = Vec::new();
    for line in text.trim_start_matches('\u{feff}').lines() {
        let line = line.trim();
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((name, value)) = line.split_once('=') else {
            continue;
        };
        let name = name.trim();
        if name.starts_with("REVERB_") {
            vars.push((name.to_owned(), Value::String(env_value(value))));
        }
    }
    if !vars.iter().any(|(n, _)| n == "REVERB_APP_ID") {
        return Err(TransferError::Unreadable(
            "the environment has no REVERB_APP_ID".into(),
        ));
    }
    Ok(vec![reverb_entry(Fields::new(vars), 0, true)])
}

/// A `.env` value written so that `parse_reverb_env` and Laravel read it back as is.
fn env_quoted(value: &str) -> String {
    if value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '/' | ':' | ','))
    {
        value.to_owned()
    } else if !value.contains('\'') {
        format!("'{value}'")
    } else {
        let escaped = value
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('$', "\\$");
        format!("\"{escaped}\"")
    }
}

/// Reverb's environment holds one app.
pub fn render_reverb_env(apps: &[AppConfig], with_secrets: bool) -> Result<String, TransferError> {
    let [app] = apps else {
        return Err(TransferError::Unsupported(format!(
            "Reverb's environment holds one app and there are {}: export one (--app ID) or use reverb-json",
            apps.len()
        )));
    };
    let mut out = String::new();
    let mut line = |name: &str, value: &str| {
        let _ = writeln!(out, "{name}={}", env_quoted(value));
    };
    line("REVERB_APP_ID", &app.id);
    line("REVERB_APP_KEY", &app.key);
    if with_secrets {
        line("REVERB_APP_SECRET", &app.secret);
    }
    line(
        "REVERB_APP_MAX_MESSAGE_SIZE",
        &app.limits.max_event_payload_bytes.to_string(),
    );
    if app.limits.max_connections > 0 {
        line(
            "REVERB_APP_MAX_CONNECTIONS",
            &app.limits.max_connections.to_string(),
        );
    }
    if !app.allowed_origins.is_empty() {
        // Not one of Reverb's own variables (its origins live in config/reverb.php).
        line("REVERB_ALLOWED_ORIGINS", &app.allowed_origins.join(","));
    }
    Ok(out)
}

fn origins_or_any(app: &AppConfig) -> Value {
    if app.allowed_origins.is_empty() {
        json!(["*"])
    } else {
        json!(app.allowed_origins)
    }
}

pub fn render_reverb_json(apps: &[AppConfig], with_secrets: bool) -> String {
    let list: Vec<Value> = apps
        .iter()
        .map(|a| {
            let mut m = Map::new();
            m.insert("app_id".into(), json!(a.id));
            m.insert("key".into(), json!(a.key));
            if with_secrets {
                m.insert("secret".into(), json!(a.secret));
            }
            m.insert("allowed_origins".into(), origins_or_any(a));
            m.insert(
                "max_message_size".into(),
                json!(a.limits.max_event_payload_bytes),
            );
            let max = a.limits.max_connections;
            m.insert(
                "max_connections".into(),
                if max == 0 { Value::Null } else { json!(max) },
            );
            let from = if a.client_events { "members" } else { "none" };
            m.insert("accept_client_events_from".into(), json!(from));
            Value::Object(m)
        })
        .collect();
    serde_json::to_string_pretty(&list).unwrap_or_default() + "\n"
}

const WEBSOCKETS_MAPPED: &[(&[&str], Target)] = &[
    (&["name"], Target::Name),
    (&["capacity"], Target::Limit("max_connections", Scale::Same)),
    (&["enableclientmessages"], Target::ClientEvents),
    (&["allowedorigins"], Target::AllowedOrigins),
];

fn websockets_entry(mut row: Fields, position: usize) -> Entry {
    let (id, key, secret) = credentials(&mut row, position, &["id", "appid"])?;
    let mut app = Builder::new();
    for (names, target) in WEBSOCKETS_MAPPED {
        if let Some((name, v)) = row.take(names) {
            app.set(*target, &name, &v).map_err(refuse(&id))?;
        }
    }
    if let Some((name, v)) = row.take(&["enablestatistics"]) {
        if fields::boolean(&name, &v).map_err(refuse(&id))? {
            app.unmapped(&name, &v, "statistics are not collected yet");
        }
    }
    if let Some((name, v)) = row.take(&["path"]) {
        app.unmapped(
            &name,
            &v,
            "apps are served at /app/{key}; put a path prefix in the reverse proxy",
        );
    }
    for (name, v) in row.rest() {
        app.unmapped(&name, &v, "not a setting of this server");
    }
    Ok(app.finish(id, key, secret))
}

/// The `apps` of laravel-websockets' `config/websockets.php`, as JSON.
pub fn parse_websockets(text: &str) -> Result<Vec<Entry>, TransferError> {
    Ok(fields::objects(fields::json_apps(text, &[])?)?
        .into_iter()
        .enumerate()
        .map(|(i, row)| websockets_entry(row, i))
        .collect())
}

pub fn render_websockets(apps: &[AppConfig], with_secrets: bool) -> String {
    let list: Vec<Value> = apps
        .iter()
        .map(|a| {
            let mut m = Map::new();
            m.insert("id".into(), json!(a.id));
            m.insert("name".into(), json!(a.name));
            m.insert("key".into(), json!(a.key));
            if with_secrets {
                m.insert("secret".into(), json!(a.secret));
            }
            m.insert("path".into(), Value::Null);
            let max = a.limits.max_connections;
            m.insert(
                "capacity".into(),
                if max == 0 { Value::Null } else { json!(max) },
            );
            m.insert("enable_client_messages".into(), json!(a.client_events));
            m.insert("enable_statistics".into(), json!(false));
            m.insert("allowed_origins".into(), json!(a.allowed_origins));
            Value::Object(m)
        })
        .collect();
    serde_json::to_string_pretty(&list).unwrap_or_default() + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apps::transfer::{export, parse, Format, ImportedApp};

    fn one(text: &str, format: Format) -> ImportedApp {
        let (_, mut entries) = parse(text, Some(format)).unwrap();
        assert_eq!(entries.len(), 1);
        entries.remove(0).unwrap()
    }

    #[test]
    fn reverb_env_reads_its_app_and_reports_server_settings() {
        let env = "APP_NAME=Shop\n# Reverb\nREVERB_APP_ID=448113\nREVERB_APP_KEY=\"qnyn8aawr0dxc2rxzdsd\"\n\
                   export REVERB_APP_SECRET='s3cr3t#with$'\nREVERB_HOST=\"ws.example.com\"\n\
                   REVERB_APP_MAX_MESSAGE_SIZE=20000 # bytes\nREVERB_APP_PING_INTERVAL=60\n\
                   VITE_REVERB_APP_KEY=\"${REVERB_APP_KEY}\"\n";
        let app = one(env, Format::ReverbEnv);
        assert_eq!(
            (app.id.as_str(), app.key.as_str()),
            ("448113", "qnyn8aawr0dxc2rxzdsd")
        );
        assert_eq!(app.secret.as_deref(), Some("s3cr3t#with$"));
        assert_eq!(
            app.settings.limits.unwrap().max_event_payload_bytes,
            Some(20000)
        );
        assert_eq!(app.unmapped.len(), 2, "{:?}", app.unmapped);
        assert!(app
            .unmapped
            .iter()
            .any(|u| u.starts_with("REVERB_APP_PING_INTERVAL = ")));
        assert!(app.unmapped.iter().any(|u| u.starts_with("REVERB_HOST = ")));
        assert!(parse("REVERB_APP_KEY=k\n", Some(Format::ReverbEnv)).is_err());
    }

    #[test]
    fn reverb_config_apps_as_json() {
        let text = r#"{"provider":"config","apps":[{"key":"rk","secret":"reverb-secret","app_id":"r1",
            "options":{"host":"localhost","port":443,"scheme":"https","useTLS":true},
            "allowed_origins":["laravel.com"],"ping_interval":60,"activity_timeout":30,
            "max_message_size":10000,"max_connections":null,"accept_client_events_from":"none"}]}"#;
        let app = one(text, Format::ReverbJson);
        assert_eq!(app.id, "r1");
        assert_eq!(
            app.settings.allowed_origins,
            Some(vec!["laravel.com".to_owned()])
        );
        assert_eq!(app.settings.client_events, Some(false));
        let limits = app.settings.limits.unwrap();
        assert_eq!(
            (limits.max_event_payload_bytes, limits.max_connections),
            (Some(10000), None)
        );
        assert_eq!(app.unmapped.len(), 3, "{:?}", app.unmapped);
        assert!(app.unmapped.iter().any(|u| u.starts_with("options = ")));
    }

    #[test]
    fn laravel_websockets_apps_as_json() {
        let text = r#"[{"id":"lw1","name":"Legacy","key":"lwkey","secret":"lw-secret-1","path":null,
            "capacity":250,"enable_client_messages":true,"enable_statistics":true,"allowed_origins":[]}]"#;
        let app = one(text, Format::LaravelWebsockets);
        assert_eq!(app.settings.name.as_deref(), Some("Legacy"));
        assert_eq!(app.settings.limits.unwrap().max_connections, Some(250));
        assert_eq!(app.settings.allowed_origins, Some(vec![]));
        assert_eq!(
            app.unmapped,
            vec!["enable_statistics = true: statistics are not collected yet"]
        );
    }

    #[test]
    fn exports_read_back() {
        let mut app = AppConfig::generate("a");
        app.secret = "it's \"odd\" $HOME\\x".into();
        app.allowed_origins = vec!["https://a.test".into(), "*.b.test".into()];
        app.limits.max_connections = 9;
        app.client_events = false;
        for format in [
            Format::ReverbEnv,
            Format::ReverbJson,
            Format::LaravelWebsockets,
        ] {
            let read = one(&export(&[app.clone()], format, true).unwrap(), format);
            assert_eq!(
                read.secret.as_deref(),
                Some(app.secret.as_str()),
                "{format}"
            );
            assert_eq!(
                read.settings.allowed_origins.as_ref(),
                Some(&app.allowed_origins),
                "{format}"
            );
            assert_eq!(
                read.settings.limits.unwrap().max_connections,
                Some(9),
                "{format}"
            );
            assert!(read.unmapped.is_empty(), "{format}: {:?}", read.unmapped);
            let hidden = export(&[app.clone()], format, false).unwrap();
            assert!(!hidden.contains("odd"), "{format}");
        }
        assert!(export(&[app.clone(), app], Format::ReverbEnv, true).is_err());
    }
}
