//! What an import does to the stored apps, decided before anything is written: per entry of
//! the file, create, update (by app id), unchanged, or why not (conflict, invalid). Pure: it
//! sees the stored apps as a list, so a dry run and the real run plan alike, and a second run
//! of the same file plans "unchanged" for every app.

use std::collections::HashMap;

use serde_json::Value;
use shared::credentials;
use shared::transfer::{ImportAction, ImportedAppReport};

use super::{Entry, ImportedApp};
use crate::apps::patch::ConfigError;
use crate::apps::service::app_dto;
use crate::apps::{apply_patch, AppConfig};

/// What will be written for one entry.
#[derive(Debug, Clone)]
pub enum Change {
    /// A new app, complete.
    Create(AppConfig),
    /// The file's settings, to be applied to the stored app as it is when written.
    Update(ImportedApp),
}

/// One entry's plan: the report people read, and the change (for create and update).
#[derive(Debug, Clone)]
pub struct Planned {
    pub report: ImportedAppReport,
    pub change: Option<Change>,
}

/// Puts the file's credentials and settings into `config`, checking each.
pub fn apply_imported(config: &mut AppConfig, app: &ImportedApp) -> Result<(), ConfigError> {
    let refused = |e: credentials::CredentialError| ConfigError::new(e.field, e.message);
    credentials::check_key(&app.key).map_err(refused)?;
    let mut next = config.clone();
    next.key.clone_from(&app.key);
    if let Some(secret) = &app.secret {
        credentials::check_secret(secret).map_err(refused)?;
        next.secret.clone_from(secret);
    }
    apply_patch(&mut next, &app.settings)?;
    *config = next;
    Ok(())
}

/// The settings that differ between two versions of an app, as the API names them
/// (`limits.max_connections`); a changed secret is named, never shown.
pub fn changes(before: &AppConfig, after: &AppConfig) -> Vec<String> {
    let as_map = |c: &AppConfig| match serde_json::to_value(app_dto(c, 0)) {
        Ok(Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    let (a, b) = (as_map(before), as_map(after));
    let mut out = Vec::new();
    for (field, new) in &b {
        if matches!(
            field.as_str(),
            "version" | "connections" | "previous_secret_expires_at"
        ) {
            continue;
        }
        let old = a.get(field).unwrap_or(&Value::Null);
        match (old, new) {
            (Value::Object(o), Value::Object(n)) => {
                for (sub, value) in n {
                    if o.get(sub) != Some(value) {
                        out.push(format!("{field}.{sub}"));
                    }
                }
            }
            _ if old != new => out.push(field.clone()),
            _ => {}
        }
    }
    out
}

fn report(
    id: &str,
    name: &str,
    key: &str,
    action: ImportAction,
    unmapped: Vec<String>,
) -> ImportedAppReport {
    ImportedAppReport {
        id: id.to_owned(),
        name: name.to_owned(),
        key: key.to_owned(),
        action,
        changes: Vec::new(),
        unmapped,
        message: None,
    }
}

fn refused(app: &ImportedApp, action: ImportAction, message: String) -> Planned {
    let name = app.settings.name.clone().unwrap_or_default();
    let mut r = report(&app.id, &name, &app.key, action, app.unmapped.clone());
    r.message = Some(message);
    Planned {
        report: r,
        change: None,
    }
}

/// Plans every entry against the stored apps. `template` makes a new app (fresh credentials,
/// the server's default limits) for ids that are not stored yet.
pub fn plan(
    entries: Vec<Entry>,
    stored: &[AppConfig],
    template: impl Fn(&str) -> AppConfig,
) -> Vec<Planned> {
    let by_id: HashMap<&str, &AppConfig> = stored.iter().map(|a| (a.id.as_str(), a)).collect();
    let key_owner: HashMap<&str, &str> = stored
        .iter()
        .map(|a| (a.key.as_str(), a.id.as_str()))
        .collect();
    // The ids and keys earlier entries of the file claimed.
    let mut seen_ids: HashMap<String, usize> = HashMap::new();
    let mut seen_keys: HashMap<String, String> = HashMap::new();
    let mut out = Vec::new();
    for (i, entry) in entries.into_iter().enumerate() {
        let app = match entry {
            Ok(app) => app,
            Err(e) => {
                let mut r = report(&e.label, "", "", ImportAction::Invalid, Vec::new());
                r.message = Some(e.message);
                out.push(Planned {
                    report: r,
                    change: None,
                });
                continue;
            }
        };
        if let Err(e) = credentials::check_id(&app.id) {
            out.push(refused(&app, ImportAction::Invalid, e.message));
            continue;
        }
        if let Some(first) = seen_ids.insert(app.id.clone(), i) {
            let message = format!("the file has this id twice (also app {})", first + 1);
            out.push(refused(&app, ImportAction::Conflict, message));
            continue;
        }
        if let Some(other) = seen_keys.insert(app.key.clone(), app.id.clone()) {
            let message = format!("the file gives this key to app {other} too");
            out.push(refused(&app, ImportAction::Conflict, message));
            continue;
        }
        if let Some(owner) = key_owner
            .get(app.key.as_str())
            .filter(|owner| **owner != app.id)
        {
            let message = format!("the key belongs to app {owner}");
            out.push(refused(&app, ImportAction::Conflict, message));
            continue;
        }
        out.push(match by_id.get(app.id.as_str()) {
            Some(current) => plan_update(app, current),
            None => plan_create(app, &template),
        });
    }
    out
}

fn plan_update(app: ImportedApp, current: &AppConfig) -> Planned {
    let mut next = current.clone();
    if let Err(e) = apply_imported(&mut next, &app) {
        return refused(&app, ImportAction::Invalid, e.message);
    }
    let changed = changes(current, &next);
    let action = if changed.is_empty() {
        ImportAction::Unchanged
    } else {
        ImportAction::Update
    };
    let mut r = report(
        &next.id,
        &next.name,
        &next.key,
        action,
        app.unmapped.clone(),
    );
    r.changes = changed;
    Planned {
        report: r,
        change: (action == ImportAction::Update).then_some(Change::Update(app)),
    }
}

fn plan_create(app: ImportedApp, template: &impl Fn(&str) -> AppConfig) -> Planned {
    if app.secret.is_none() {
        let message =
            "the file has no secret for this new app (export with --with-secrets)".to_owned();
        return refused(&app, ImportAction::Invalid, message);
    }
    let mut config = template(&app.id);
    config.id.clone_from(&app.id);
    if let Err(e) = apply_imported(&mut config, &app) {
        return refused(&app, ImportAction::Invalid, e.message);
    }
    Planned {
        report: report(
            &config.id,
            &config.name,
            &config.key,
            ImportAction::Create,
            app.unmapped,
        ),
        change: Some(Change::Create(config)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apps::transfer::Refused;
    use shared::admin::AppPatch;

    fn imported(id: &str, key: &str, secret: Option<&str>) -> ImportedApp {
        ImportedApp {
            id: id.into(),
            key: key.into(),
            secret: secret.map(str::to_owned),
            settings: AppPatch {
                name: Some(format!("app {id}")),
                ..AppPatch::default()
            },
            unmapped: vec!["webhooks = []: x".into()],
        }
    }

    fn actions(planned: &[Planned]) -> Vec<ImportAction> {
        planned.iter().map(|p| p.report.action).collect()
    }

    #[test]
    fn creates_updates_and_leaves_alone_by_id() {
        let mut stored = AppConfig::generate("app 1");
        stored.id = "1".into();
        stored.key = "key-1".into();
        stored.secret = "secret-one".into();
        let entries = vec![
            Ok(imported("1", "key-1", Some("secret-one"))),
            Ok(imported("2", "key-2", Some("secret-two"))),
        ];
        let planned = plan(entries, &[stored.clone()], AppConfig::generate);
        assert_eq!(
            actions(&planned),
            [ImportAction::Unchanged, ImportAction::Create]
        );
        assert!(planned[0].change.is_none());
        let Some(Change::Create(new)) = &planned[1].change else {
            panic!()
        };
        assert_eq!(
            (new.id.as_str(), new.key.as_str(), new.secret.as_str()),
            ("2", "key-2", "secret-two")
        );
        assert_eq!(planned[1].report.unmapped.len(), 1);

        let mut changed = imported("1", "key-1b", Some("secret-new"));
        changed.settings.enabled = Some(false);
        let planned = plan(vec![Ok(changed)], &[stored], AppConfig::generate);
        assert_eq!(actions(&planned), [ImportAction::Update]);
        let mut changed = planned[0].report.changes.clone();
        changed.sort();
        assert_eq!(changed, ["enabled", "key", "secret"]);
        let text = serde_json::to_string(&planned[0].report).unwrap();
        assert!(!text.contains("secret-new"), "{text}");
    }

    #[test]
    fn conflicts_and_invalid_entries_are_reported_not_written() {
        use ImportAction::{Conflict, Create, Invalid};
        let mut stored = AppConfig::generate("other");
        stored.id = "9".into();
        stored.key = "taken".into();
        let entries = vec![
            Ok(imported("1", "taken", Some("secret-one"))),
            Ok(imported("2", "k2", Some("secret-two"))),
            Ok(imported("2", "k3", Some("secret-two"))),
            Ok(imported("4", "k2", Some("secret-two"))),
            Ok(imported("bad id", "k5", Some("secret-two"))),
            Ok(imported("6", "k6", Some("short"))),
            Ok(imported("7", "k7", None)),
            Err(Refused {
                label: "app 8".into(),
                message: "the app has no key".into(),
            }),
        ];
        let planned = plan(entries, &[stored], AppConfig::generate);
        assert_eq!(
            actions(&planned),
            [Conflict, Create, Conflict, Conflict, Invalid, Invalid, Invalid, Invalid]
        );
        assert_eq!(
            planned[0].report.message.as_deref(),
            Some("the key belongs to app 9")
        );
        assert!(planned
            .iter()
            .filter(|p| p.report.action != Create)
            .all(|p| p.change.is_none()));
        assert!(planned[6]
            .report
            .message
            .as_deref()
            .unwrap()
            .contains("--with-secrets"));
    }

    #[test]
    fn an_update_without_a_secret_keeps_the_stored_one() {
        let stored = AppConfig::generate("a");
        let app = imported(&stored.id, &stored.key, None);
        let planned = plan(vec![Ok(app)], &[stored], AppConfig::generate);
        assert_eq!(planned[0].report.changes, ["name"]);
    }
}
