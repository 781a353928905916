//! Reading one app's fields from any format: names matched without regard to case or
//! underscores (`maxConnections` = `max_connections`), values accepted as JSON or as CSV text,
//! each field taken at most once, and whatever is left over reported as unmapped. Also the
//! settings we map, in our terms ([`Target`]), so that every format converts values the same
//! way.

use serde_json::{Map, Value};
use shared::admin::AppPatch;
use shared::limits::{limit_spec, AppLimitsPatch};

use super::{ImportedApp, Refused, TransferError};

/// `maxConnections`, `max_connections` and `MAX-CONNECTIONS` all become `maxconnections`.
pub fn norm(name: &str) -> String {
    name.chars()
        .filter(|c| !matches!(c, '_' | '-' | ' '))
        .flat_map(char::to_lowercase)
        .collect()
}

/// The list of apps in `value`: the value itself, or its `apps` member (also `apps.apps`, the
/// shape of `config/reverb.php`).
pub fn app_list(value: &Value) -> Option<&Vec<Value>> {
    match value {
        Value::Array(list) => Some(list),
        Value::Object(map) => app_list(map.get("apps")?),
        _ => None,
    }
}

/// Reads JSON text and returns its app list.
pub fn json_apps(text: &str, path: &[&str]) -> Result<Vec<Value>, TransferError> {
    let value: Value = serde_json::from_str(text.trim_start_matches('\u{feff}'))
        .map_err(|e| TransferError::Unreadable(format!("the file is not valid JSON: {e}")))?;
    let mut at = &value;
    for step in path {
        at = at.get(step).ok_or_else(|| {
            TransferError::Unreadable(format!("the file has no {}", path.join(".")))
        })?;
    }
    app_list(at).cloned().ok_or_else(|| {
        TransferError::Unreadable(if path.is_empty() {
            "the file is not a list of apps".to_owned()
        } else {
            format!("{} is not a list of apps", path.join("."))
        })
    })
}

/// Each app of a JSON list as its fields.
pub fn objects(list: Vec<Value>) -> Result<Vec<Fields>, TransferError> {
    list.into_iter()
        .map(|app| {
            if let Value::Object(map) = app {
                Ok(Fields::from_map(map))
            } else {
                Err(TransferError::Unreadable(
                    "every app must be a JSON object".into(),
                ))
            }
        })
        .collect()
}

/// One app's fields, each taken once.
pub struct Fields {
    fields: Vec<(String, Value)>,
    taken: Vec<bool>,
}

impl Fields {
    pub fn new(fields: Vec<(String, Value)>) -> Self {
        let taken = vec![false; fields.len()];
        Self { fields, taken }
    }

    pub fn from_map(map: Map<String, Value>) -> Self {
        Self::new(map.into_iter().collect())
    }

    /// The field named any of `names` (normalised), unless empty (null or ""): its name as
    /// written and its value.
    pub fn take(&mut self, names: &[&str]) -> Option<(String, Value)> {
        let i = self
            .fields
            .iter()
            .enumerate()
            .position(|(i, (k, _))| !self.taken[i] && names.contains(&norm(k).as_str()))?;
        self.taken[i] = true;
        let (name, value) = self.fields[i].clone();
        match &value {
            Value::Null => None,
            Value::String(s) if s.trim().is_empty() => None,
            _ => Some((name, value)),
        }
    }

    /// The fields nobody took that say something (not null, not empty).
    pub fn rest(self) -> Vec<(String, Value)> {
        self.fields
            .into_iter()
            .zip(self.taken)
            .filter(|((_, v), taken)| !taken && !is_empty(v))
            .map(|(field, _)| field)
            .collect()
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// A value as the file wrote it, for messages.
pub fn shown(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

pub fn text(field: &str, v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.trim().to_owned()),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(format!("{field} must be text, not {other}")),
    }
}

pub fn boolean(field: &str, v: &Value) -> Result<bool, String> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::Number(n) if n.as_i64() == Some(0) => Ok(false),
        Value::Number(n) if n.as_i64() == Some(1) => Ok(true),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err(format!("{field} must be true or false, not {s:?}")),
        },
        other => Err(format!("{field} must be true or false, not {other}")),
    }
}

pub fn number(field: &str, v: &Value) -> Result<f64, String> {
    let n = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    n.filter(|n| n.is_finite())
        .ok_or_else(|| format!("{field} must be a number, not {}", shown(v)))
}

/// A list of origins: a JSON array, or text separated by commas.
pub fn origins(field: &str, v: &Value) -> Result<Vec<String>, String> {
    let list: Vec<String> = match v {
        Value::Array(items) => items
            .iter()
            .map(|i| text(field, i))
            .collect::<Result<_, _>>()?,
        Value::String(s) => s.split(',').map(|o| o.trim().to_owned()).collect(),
        other => return Err(format!("{field} must be a list of origins, not {other}")),
    };
    let list: Vec<String> = list.into_iter().filter(|o| !o.is_empty()).collect();
    // `*` anywhere means any origin, which is what an empty list means here.
    Ok(if list.iter().any(|o| o == "*") {
        Vec::new()
    } else {
        list
    })
}

/// How a file's number becomes one of our limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// The same unit.
    Same,
    /// Kilobytes in the file, bytes here.
    Kb,
}

/// One of our settings that a file's field maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Name,
    Enabled,
    ClientEvents,
    RequireUserAuth,
    WatchlistEvents,
    AllowedOrigins,
    /// A limit by field name; `-1` (and for `unlimited_zero` limits, 0) means no limit.
    Limit(&'static str, Scale),
}

/// What one app of a file becomes while its fields are read: the settings, and what was left
/// out.
#[derive(Default)]
pub struct Builder {
    pub settings: AppPatch,
    pub limits: AppLimitsPatch,
    pub unmapped: Vec<String>,
}

impl Builder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `target` from the field `name` = `v`.
    pub fn set(&mut self, target: Target, name: &str, v: &Value) -> Result<(), String> {
        match target {
            Target::Name => self.settings.name = Some(text(name, v)?),
            Target::Enabled => self.settings.enabled = Some(boolean(name, v)?),
            Target::ClientEvents => self.settings.client_events = Some(boolean(name, v)?),
            Target::RequireUserAuth => self.settings.require_user_auth = Some(boolean(name, v)?),
            Target::WatchlistEvents => self.settings.watchlist_events = Some(boolean(name, v)?),
            Target::AllowedOrigins => self.settings.allowed_origins = Some(origins(name, v)?),
            Target::Limit(field, scale) => self.limit(field, scale, name, v)?,
        }
        Ok(())
    }

    fn limit(
        &mut self,
        field: &'static str,
        scale: Scale,
        name: &str,
        v: &Value,
    ) -> Result<(), String> {
        let spec = limit_spec(field).expect("mapped limits exist");
        let n = number(name, v)?;
        if n < 0.0 {
            // -1 is "no limit" in soketi and its kin.
            if spec.min == 0 {
                self.limits.set(field, 0);
            } else {
                self.unmapped.push(format!(
                    "{name} = {}: limits.{field} cannot be unlimited; it stays as it is (new apps: {})",
                    shown(v),
                    spec.default
                ));
            }
            return Ok(());
        }
        let value = match scale {
            Scale::Same => n,
            Scale::Kb => n * 1024.0,
        }
        .round();
        if value > f64::from(u32::MAX) {
            return Err(format!("{name} = {} is too large", shown(v)));
        }
        // The range is checked with the app's other settings, naming our field.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        self.limits.set(field, value as u32);
        Ok(())
    }

    /// Reports `name = value` as not imported, with why.
    pub fn unmapped(&mut self, name: &str, v: &Value, why: &str) {
        self.unmapped.push(format!("{name} = {}: {why}", shown(v)));
    }

    /// The app, with its credentials.
    pub fn finish(mut self, id: String, key: String, secret: Option<String>) -> ImportedApp {
        if self.limits != AppLimitsPatch::default() {
            self.settings.limits = Some(self.limits);
        }
        ImportedApp {
            id,
            key,
            secret,
            settings: self.settings,
            unmapped: self.unmapped,
        }
    }
}

/// The credentials of one entry: id and key required, secret optional.
pub fn credentials(
    fields: &mut Fields,
    position: usize,
    id_names: &[&str],
) -> Result<(String, String, Option<String>), Refused> {
    let position_label = format!("app {}", position + 1);
    let value =
        |fields: &mut Fields, names: &[&str], what: &str| -> Result<Option<String>, Refused> {
            fields
                .take(names)
                .map(|(name, v)| text(&name, &v))
                .transpose()
                .map_err(|message| Refused {
                    label: position_label.clone(),
                    message: format!("{what}: {message}"),
                })
        };
    let id = value(&mut *fields, id_names, "id")?.ok_or_else(|| Refused {
        label: position_label.clone(),
        message: "the app has no id".into(),
    })?;
    let key =
        value(&mut *fields, &["key", "appkey", "reverbappkey"], "key")?.ok_or_else(|| Refused {
            label: id.clone(),
            message: "the app has no key".into(),
        })?;
    let secret = value(
        &mut *fields,
        &["secret", "appsecret", "reverbappsecret"],
        "secret",
    )?;
    Ok((id, key, secret))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_match_across_cases_and_values_across_json_and_csv() {
        let mut fields = Fields::new(vec![
            ("maxConnections".into(), json!("12")),
            ("enable_client_messages".into(), json!("0")),
            ("webhooks".into(), json!([])),
            ("extra".into(), json!(3)),
        ]);
        let (name, v) = fields.take(&["maxconnections"]).unwrap();
        assert_eq!(
            (name.as_str(), number(&name, &v)),
            ("maxConnections", Ok(12.0))
        );
        let (name, v) = fields.take(&["enableclientmessages"]).unwrap();
        assert_eq!(boolean(&name, &v), Ok(false));
        assert!(fields.take(&["maxconnections"]).is_none(), "taken once");
        assert_eq!(fields.rest(), vec![("extra".to_owned(), json!(3))]);
    }

    #[test]
    fn limits_convert_units_and_unlimited() {
        let mut b = Builder::new();
        b.set(
            Target::Limit("max_event_payload_bytes", Scale::Kb),
            "kb",
            &json!(0.5),
        )
        .unwrap();
        b.set(
            Target::Limit("max_connections", Scale::Same),
            "c",
            &json!(-1),
        )
        .unwrap();
        b.set(
            Target::Limit("max_presence_members", Scale::Same),
            "p",
            &json!(-1),
        )
        .unwrap();
        assert_eq!(b.limits.max_event_payload_bytes, Some(512));
        assert_eq!(b.limits.max_connections, Some(0));
        assert_eq!(b.limits.max_presence_members, None);
        assert_eq!(b.unmapped.len(), 1, "{:?}", b.unmapped);
        assert!(b
            .set(
                Target::Limit("max_connections", Scale::Same),
                "c",
                &json!("many")
            )
            .unwrap_err()
            .contains("must be a number"));
        assert_eq!(origins("o", &json!(["*", "https://a.test"])), Ok(vec![]));
        assert_eq!(
            origins("o", &json!("https://a.test, b.test")),
            Ok(vec!["https://a.test".to_owned(), "b.test".to_owned()])
        );
    }
}
