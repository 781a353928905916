//! How a change to an app is checked and applied to a configuration: pure functions, used by
//! [`super::service`] for every writer (admin API, CLI, tests), so a value the API refuses is
//! refused everywhere. The limit ranges come from `shared::limits`, where the panel reads them
//! too.

use shared::admin::{self as dto, AppPatch};
use shared::limits::LimitError;

use super::AppConfig;

/// A field of a change that is not acceptable, with a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ConfigError {
    /// The field as the API names it, e.g. `name` or `limits.max_connections`.
    pub field: &'static str,
    pub message: String,
}

impl ConfigError {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

impl From<LimitError> for ConfigError {
    fn from(e: LimitError) -> Self {
        Self::new(e.spec.path, e.to_string())
    }
}

/// The value if it lies in `min..=max`.
pub fn ranged(field: &'static str, value: u32, min: u32, max: u32) -> Result<u32, ConfigError> {
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(ConfigError::new(
            field,
            format!("{field} must be between {min} and {max}"),
        ))
    }
}

/// An app name: trimmed, not empty, at most `shared::admin::MAX_NAME` characters.
pub fn app_name(name: &str) -> Result<String, ConfigError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(ConfigError::new("name", "name must not be empty"));
    }
    if name.chars().count() > dto::MAX_NAME {
        return Err(ConfigError::new(
            "name",
            format!("name must be at most {} characters", dto::MAX_NAME),
        ));
    }
    Ok(name.to_owned())
}

fn valid_origin(origin: &str) -> bool {
    if origin == "*" {
        return true;
    }
    let host = origin.strip_prefix("*.").unwrap_or(origin);
    let host = host.split_once("://").map_or(host, |(scheme, rest)| {
        if matches!(scheme, "http" | "https") {
            rest
        } else {
            ""
        }
    });
    !host.is_empty()
        && host.len() <= 253
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
}

fn origins(origins: &[String]) -> Result<Vec<String>, ConfigError> {
    if origins.len() > 100 {
        return Err(ConfigError::new("allowed_origins", "at most 100 origins"));
    }
    let origins: Vec<String> = origins.iter().map(|o| o.trim().to_owned()).collect();
    if let Some(bad) = origins.iter().find(|o| !valid_origin(o)) {
        return Err(ConfigError::new(
            "allowed_origins",
            format!(
                "{bad:?} is not an origin: use https://host[:port], a host, *.example.com or *"
            ),
        ));
    }
    Ok(origins)
}

/// Applies a patch to the configuration, checking every field first: on an error `c` is left
/// as it was.
pub fn apply_patch(c: &mut AppConfig, p: &AppPatch) -> Result<(), ConfigError> {
    let mut next = c.clone();
    if let Some(name) = &p.name {
        next.name = app_name(name)?;
    }
    if let Some(enabled) = p.enabled {
        next.enabled = enabled;
    }
    if let Some(list) = &p.allowed_origins {
        next.allowed_origins = origins(list)?;
    }
    if let Some(v) = p.client_events {
        next.client_events = v;
    }
    if let Some(v) = p.require_user_auth {
        next.require_user_auth = v;
    }
    if let Some(v) = p.user_auth_timeout_secs {
        let (min, max) = dto::USER_AUTH_TIMEOUT_SECS;
        next.user_auth_timeout_secs = ranged("user_auth_timeout_secs", v, min, max)?;
    }
    if let Some(v) = p.watchlist_events {
        next.watchlist_events = v;
    }
    if let Some(v) = p.subscription_count_events {
        next.subscription_count_events = v;
    }
    if let Some(limits) = &p.limits {
        next.limits = next.limits.patched(limits)?;
    }
    *c = next;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::limits::AppLimitsPatch;

    #[test]
    fn patches_are_validated_per_field_and_all_or_nothing() {
        let mut app = AppConfig::generate("a");
        let before = app.clone();
        let bad = AppPatch {
            name: Some("renamed".into()),
            allowed_origins: Some(vec!["not an origin".into()]),
            ..AppPatch::default()
        };
        assert_eq!(
            apply_patch(&mut app, &bad).unwrap_err().field,
            "allowed_origins"
        );
        assert_eq!(app, before, "a refused patch changes nothing");
        let bad = AppPatch {
            limits: Some(AppLimitsPatch {
                max_event_batch_size: Some(0),
                ..Default::default()
            }),
            ..AppPatch::default()
        };
        assert_eq!(
            apply_patch(&mut app, &bad).unwrap_err().field,
            "limits.max_event_batch_size"
        );
        let bad = AppPatch {
            name: Some("  ".into()),
            ..AppPatch::default()
        };
        assert_eq!(apply_patch(&mut app, &bad).unwrap_err().field, "name");
        let good = AppPatch {
            allowed_origins: Some(vec![
                "https://a.test".into(),
                "*.example.com".into(),
                "*".into(),
                "b.test:8080".into(),
            ]),
            limits: Some(AppLimitsPatch {
                max_connections: Some(5),
                max_channels: Some(7),
                ..Default::default()
            }),
            ..AppPatch::default()
        };
        apply_patch(&mut app, &good).unwrap();
        assert_eq!(
            (app.limits.max_connections, app.limits.max_channels),
            (5, 7)
        );
    }
}
