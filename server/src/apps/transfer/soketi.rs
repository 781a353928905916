//! soketi and sockudo: soketi's JSON config (`appManager.array.apps`, camel case), soketi's SQL
//! `apps` table exported as JSON rows or CSV (snake case, `_per_sec` columns), and sockudo's
//! config (`app_manager.array.apps`, snake case). One family: the same settings under names
//! that differ only in case and a few abbreviations, so one table maps them all.

use serde_json::{json, Map, Value};

use super::csv;
use super::fields::{self, credentials, Builder, Fields, Scale, Target};
use super::{Entry, Format, Refused, TransferError};
use crate::apps::AppConfig;

/// Fields we map, by normalised name.
const MAPPED: &[(&[&str], Target)] = &[
    (&["name"], Target::Name),
    (&["enabled"], Target::Enabled),
    (&["enableclientmessages"], Target::ClientEvents),
    (&["enableuserauthentication"], Target::RequireUserAuth),
    (&["enablewatchlistevents"], Target::WatchlistEvents),
    (&["allowedorigins"], Target::AllowedOrigins),
    (
        &["maxconnections"],
        Target::Limit("max_connections", Scale::Same),
    ),
    (
        &["maxclienteventspersecond", "maxclienteventspersec"],
        Target::Limit("max_client_events_per_second", Scale::Same),
    ),
    (
        &["maxpresencemembersperchannel"],
        Target::Limit("max_presence_members", Scale::Same),
    ),
    (
        &["maxpresencemembersizeinkb"],
        Target::Limit("max_presence_member_size_bytes", Scale::Kb),
    ),
    (
        &["maxchannelnamelength"],
        Target::Limit("max_channel_name_length", Scale::Same),
    ),
    (
        &["maxeventchannelsatonce"],
        Target::Limit("max_event_channels_at_once", Scale::Same),
    ),
    (
        &["maxeventnamelength"],
        Target::Limit("max_event_name_length", Scale::Same),
    ),
    (
        &["maxeventpayloadinkb"],
        Target::Limit("max_event_payload_bytes", Scale::Kb),
    ),
    (
        &["maxeventbatchsize"],
        Target::Limit("max_event_batch_size", Scale::Same),
    ),
    // Both count as soketi counts: an event to n channels is n events.
    (
        &["maxbackendeventspersecond", "maxbackendeventspersec"],
        Target::Limit("max_backend_events_per_second", Scale::Same),
    ),
    (
        &["maxreadrequestspersecond", "maxreadreqpersec"],
        Target::Limit("max_read_requests_per_second", Scale::Same),
    ),
];

pub fn parse(text: &str, format: Format) -> Result<Vec<Entry>, TransferError> {
    let path: &[&str] = match format {
        Format::Soketi => &["appManager", "array"],
        Format::Sockudo => &["app_manager", "array"],
        _ => &[],
    };
    let rows: Vec<Fields> = if format == Format::SoketiSqlCsv {
        csv::records(text)?
            .into_iter()
            .map(|row| {
                Fields::new(
                    row.into_iter()
                        .map(|(k, v)| (k, Value::String(v)))
                        .collect(),
                )
            })
            .collect()
    } else {
        fields::objects(fields::json_apps(text, path)?)?
    };
    Ok(rows
        .into_iter()
        .enumerate()
        .map(|(i, row)| entry(row, i))
        .collect())
}

fn entry(mut row: Fields, position: usize) -> Entry {
    let (id, key, secret) = credentials(&mut row, position, &["id", "appid"])?;
    let refused = |message: String| Refused {
        label: id.clone(),
        message,
    };
    let mut app = Builder::new();
    for (names, target) in MAPPED {
        if let Some((name, v)) = row.take(names) {
            app.set(*target, &name, &v).map_err(refused)?;
        }
    }
    if let Some((name, v)) = row.take(&["webhooks"]) {
        let hooks = match &v {
            // A CSV cell or a JSON column holding JSON text.
            Value::String(s) => serde_json::from_str(s).unwrap_or(v.clone()),
            other => other.clone(),
        };
        if !matches!(&hooks, Value::Array(a) if a.is_empty()) {
            app.unmapped(
                &name,
                &v,
                "webhooks are not imported: add them in the panel's Webhooks tab or the admin API",
            );
        }
    }
    for (name, v) in row.rest() {
        app.unmapped(&name, &v, "not a setting of this server");
    }
    Ok(app.finish(id, key, secret))
}

/// Kilobytes as soketi writes them: whole where exact.
fn kb(bytes: u32) -> Value {
    if bytes.is_multiple_of(1024) {
        json!(bytes / 1024)
    } else {
        json!(f64::from(bytes) / 1024.0)
    }
}

/// Our 0 ("no limit") as soketi's -1.
fn unlimited(n: u32) -> Value {
    if n == 0 {
        json!(-1)
    } else {
        json!(n)
    }
}

/// One app as soketi's SQL row (`sql`) or config entry, or as sockudo's.
fn record(app: &AppConfig, format: Format, with_secrets: bool) -> Map<String, Value> {
    let l = &app.limits;
    let mut m = Map::new();
    let mut put = |k: &str, v: Value| {
        m.insert(k.to_owned(), v);
    };
    put("id", json!(app.id));
    put("key", json!(app.key));
    if with_secrets {
        put("secret", json!(app.secret));
    }
    match format {
        Format::Soketi => {
            put("maxConnections", unlimited(l.max_connections));
            put("enableClientMessages", json!(app.client_events));
            put("enabled", json!(app.enabled));
            put(
                "maxBackendEventsPerSecond",
                unlimited(l.max_backend_events_per_second),
            );
            put(
                "maxClientEventsPerSecond",
                unlimited(l.max_client_events_per_second),
            );
            put(
                "maxReadRequestsPerSecond",
                unlimited(l.max_read_requests_per_second),
            );
            put(
                "maxPresenceMembersPerChannel",
                json!(l.max_presence_members),
            );
            put(
                "maxPresenceMemberSizeInKb",
                kb(l.max_presence_member_size_bytes),
            );
            put("maxChannelNameLength", json!(l.max_channel_name_length));
            put(
                "maxEventChannelsAtOnce",
                json!(l.max_event_channels_at_once),
            );
            put("maxEventNameLength", json!(l.max_event_name_length));
            put("maxEventPayloadInKb", kb(l.max_event_payload_bytes));
            put("maxEventBatchSize", json!(l.max_event_batch_size));
            put("enableUserAuthentication", json!(app.require_user_auth));
            put("webhooks", json!([]));
        }
        Format::Sockudo => {
            put("max_connections", json!(l.max_connections));
            put("enable_client_messages", json!(app.client_events));
            put("enabled", json!(app.enabled));
            put(
                "max_client_events_per_second",
                json!(l.max_client_events_per_second),
            );
            put(
                "max_backend_events_per_second",
                unlimited(l.max_backend_events_per_second),
            );
            put(
                "max_read_requests_per_second",
                unlimited(l.max_read_requests_per_second),
            );
            put(
                "max_presence_members_per_channel",
                json!(l.max_presence_members),
            );
            put(
                "max_presence_member_size_in_kb",
                kb(l.max_presence_member_size_bytes),
            );
            put("max_channel_name_length", json!(l.max_channel_name_length));
            put(
                "max_event_channels_at_once",
                json!(l.max_event_channels_at_once),
            );
            put("max_event_name_length", json!(l.max_event_name_length));
            put("max_event_payload_in_kb", kb(l.max_event_payload_bytes));
            put("max_event_batch_size", json!(l.max_event_batch_size));
            put("enable_user_authentication", json!(app.require_user_auth));
            put("enable_watchlist_events", json!(app.watchlist_events));
        }
        _ => {
            put("max_connections", unlimited(l.max_connections));
            put("enable_client_messages", json!(app.client_events));
            put("enabled", json!(app.enabled));
            put(
                "max_backend_events_per_sec",
                unlimited(l.max_backend_events_per_second),
            );
            put(
                "max_client_events_per_sec",
                unlimited(l.max_client_events_per_second),
            );
            put(
                "max_read_req_per_sec",
                unlimited(l.max_read_requests_per_second),
            );
            put("webhooks", json!([]));
            put(
                "max_presence_members_per_channel",
                json!(l.max_presence_members),
            );
            put(
                "max_presence_member_size_in_kb",
                kb(l.max_presence_member_size_bytes),
            );
            put("max_channel_name_length", json!(l.max_channel_name_length));
            put(
                "max_event_channels_at_once",
                json!(l.max_event_channels_at_once),
            );
            put("max_event_name_length", json!(l.max_event_name_length));
            put("max_event_payload_in_kb", kb(l.max_event_payload_bytes));
            put("max_event_batch_size", json!(l.max_event_batch_size));
            put("enable_user_authentication", json!(app.require_user_auth));
        }
    }
    m
}

pub fn render(apps: &[AppConfig], format: Format, with_secrets: bool) -> String {
    let records: Vec<Map<String, Value>> = apps
        .iter()
        .map(|a| record(a, format, with_secrets))
        .collect();
    let pretty = |v: Value| serde_json::to_string_pretty(&v).unwrap_or_default() + "\n";
    match format {
        Format::Soketi => {
            pretty(json!({"appManager": {"driver": "array", "array": {"apps": records}}}))
        }
        Format::Sockudo => {
            pretty(json!({"app_manager": {"driver": "memory", "array": {"apps": records}}}))
        }
        Format::SoketiSqlCsv => {
            let mut header: Vec<String> = record(&AppConfig::generate("x"), format, true)
                .keys()
                .cloned()
                .collect();
            if !with_secrets {
                header.retain(|h| h != "secret");
            }
            let rows = records.iter().map(|r| {
                header
                    .iter()
                    .map(|h| match &r[h] {
                        Value::String(s) => s.clone(),
                        Value::Bool(b) => u8::from(*b).to_string(),
                        other => other.to_string(),
                    })
                    .collect::<Vec<_>>()
            });
            csv::write(&header, rows)
        }
        _ => pretty(Value::Array(
            records.into_iter().map(Value::Object).collect(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apps::transfer::{export, parse as parse_any};

    const SOKETI: &str = r#"{
      "debug": true,
      "appManager": {"driver": "array", "array": {"apps": [{
        "id": "app-id", "key": "app-key", "secret": "app-secret",
        "maxConnections": -1, "enableClientMessages": true, "enabled": true,
        "maxBackendEventsPerSecond": 100, "maxClientEventsPerSecond": -1,
        "maxReadRequestsPerSecond": -1, "maxPresenceMembersPerChannel": 50,
        "maxPresenceMemberSizeInKb": 2, "maxChannelNameLength": 150,
        "maxEventChannelsAtOnce": 20, "maxEventNameLength": 120, "maxEventPayloadInKb": 100,
        "maxEventBatchSize": 5, "enableUserAuthentication": true,
        "webhooks": [{"url": "https://hooks.test", "event_types": ["channel_occupied"]}]
      }]}}
    }"#;

    fn one(text: &str, format: Format) -> super::super::ImportedApp {
        let (_, mut entries) = parse_any(text, Some(format)).unwrap();
        assert_eq!(entries.len(), 1);
        entries.remove(0).unwrap()
    }

    #[test]
    fn soketi_config_maps_every_setting_and_reports_the_rest() {
        let app = one(SOKETI, Format::Soketi);
        assert_eq!((app.id.as_str(), app.key.as_str()), ("app-id", "app-key"));
        assert_eq!(app.secret.as_deref(), Some("app-secret"));
        let s = &app.settings;
        assert_eq!(
            (s.enabled, s.client_events, s.require_user_auth),
            (Some(true), Some(true), Some(true))
        );
        let l = s.limits.clone().unwrap();
        assert_eq!(l.max_connections, Some(0));
        assert_eq!(l.max_client_events_per_second, Some(0));
        assert_eq!(l.max_presence_members, Some(50));
        assert_eq!(l.max_presence_member_size_bytes, Some(2048));
        assert_eq!(l.max_channel_name_length, Some(150));
        assert_eq!(l.max_event_channels_at_once, Some(20));
        assert_eq!(l.max_event_name_length, Some(120));
        assert_eq!(l.max_event_payload_bytes, Some(100 * 1024));
        assert_eq!(l.max_event_batch_size, Some(5));
        assert_eq!(app.unmapped.len(), 1, "{:?}", app.unmapped);
        assert!(app.unmapped[0].starts_with("webhooks = "));
        assert_eq!(
            app.settings
                .limits
                .as_ref()
                .unwrap()
                .max_backend_events_per_second,
            Some(100)
        );
    }

    #[test]
    fn soketi_sql_rows_as_json_and_csv_read_alike() {
        let json = r#"[{"id":"7","key":"k7","secret":"secret-7","max_connections":200,
            "enable_client_messages":0,"enabled":1,"max_backend_events_per_sec":-1,
            "max_client_events_per_sec":-1,"max_read_req_per_sec":-1,"webhooks":"[]",
            "max_presence_members_per_channel":null,"max_event_payload_in_kb":null,
            "created_at":"2024-01-01"}]"#;
        let csv = "id,key,secret,max_connections,enable_client_messages,enabled,max_backend_events_per_sec,max_client_events_per_sec,max_read_req_per_sec,webhooks,max_presence_members_per_channel,max_event_payload_in_kb,created_at\n\
                   7,k7,secret-7,200,0,1,-1,-1,-1,[],,,2024-01-01\n";
        let a = one(json, Format::SoketiSqlJson);
        let b = one(csv, Format::SoketiSqlCsv);
        assert_eq!(a, b);
        assert_eq!(a.settings.client_events, Some(false));
        assert_eq!(
            a.settings.limits.as_ref().unwrap().max_connections,
            Some(200)
        );
        assert_eq!(
            a.settings.limits.as_ref().unwrap().max_presence_members,
            None
        );
        assert_eq!(
            a.unmapped,
            vec!["created_at = \"2024-01-01\": not a setting of this server"]
        );
    }

    #[test]
    fn sockudo_config_is_snake_case() {
        let text = r#"{"app_manager":{"driver":"memory","array":{"apps":[{"id":"s1","key":"sk",
            "secret":"sockudo-secret","max_connections":"10","enable_client_messages":false,
            "enabled":true,"max_client_events_per_second":"5","max_read_requests_per_second":50,
            "enable_watchlist_events":false}]}}}"#;
        let app = one(text, Format::Sockudo);
        assert_eq!(app.settings.watchlist_events, Some(false));
        assert_eq!(
            app.settings
                .limits
                .as_ref()
                .unwrap()
                .max_client_events_per_second,
            Some(5)
        );
        assert_eq!(
            app.settings
                .limits
                .as_ref()
                .unwrap()
                .max_read_requests_per_second,
            Some(50)
        );
        assert!(app.unmapped.is_empty(), "{:?}", app.unmapped);
    }

    #[test]
    fn entries_without_credentials_or_with_bad_values_are_refused_one_by_one() {
        let text = r#"[{"key":"k","max_connections":1},{"id":"2","key":"k2","max_connections":"x"},{"id":"3","key":"k3","enabled":1}]"#;
        let (_, entries) = parse_any(text, Some(Format::SoketiSqlJson)).unwrap();
        assert_eq!(entries[0].as_ref().unwrap_err().label, "app 1");
        assert!(entries[1]
            .as_ref()
            .unwrap_err()
            .message
            .contains("must be a number"));
        assert!(entries[2].is_ok());
    }

    #[test]
    fn exports_read_back_to_the_same_settings_and_leave_secrets_out_unless_asked() {
        let mut app = AppConfig::generate("a");
        app.limits.max_event_payload_bytes = 1000;
        app.limits.max_connections = 0;
        app.limits.max_backend_events_per_second = 250;
        app.limits.max_read_requests_per_second = 0;
        app.client_events = false;
        for format in [
            Format::Soketi,
            Format::SoketiSqlJson,
            Format::SoketiSqlCsv,
            Format::Sockudo,
        ] {
            let text = export(&[app.clone()], format, false).unwrap();
            assert!(!text.contains(&app.secret), "{format}");
            let read = one(&text, format);
            assert_eq!(read.secret, None);
            let l = read.settings.limits.unwrap();
            assert_eq!(l.max_event_payload_bytes, Some(1000), "{format}");
            assert_eq!(l.max_connections, Some(0), "{format}");
            assert_eq!(l.max_backend_events_per_second, Some(250), "{format}");
            assert_eq!(l.max_read_requests_per_second, Some(0), "{format}");
            assert_eq!(read.settings.client_events, Some(false), "{format}");
            assert!(read.unmapped.is_empty(), "{format}: {:?}", read.unmapped);
            let with = export(&[app.clone()], format, true).unwrap();
            assert_eq!(
                one(&with, format).secret.as_deref(),
                Some(app.secret.as_str())
            );
        }
    }
}
