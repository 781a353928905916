//! Picking up app changes made outside this process (the CLI, another node) without a restart.
//!
//! Every `app_sync_interval_ms` the running server reads each stored app's id and `version` (one
//! small query, no secrets decrypted) and compares them with what it runs: an id it does not run
//! is started, a higher stored version is loaded and applied, and an id that is no longer stored
//! is stopped (so deletes need no tombstones: the id set itself is compared). [`plan`] is that
//! comparison, pure and unit-tested; `AppService::sync` performs it and
//! `AppService::spawn_sync` repeats it.
//! Versions only grow, so a slow round can never put an older configuration over a newer one.

use std::collections::HashMap;

/// What to change in memory to match the database.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Stored apps not running here.
    pub start: Vec<String>,
    /// Running apps with a newer stored version.
    pub update: Vec<String>,
    /// Running apps no longer stored.
    pub stop: Vec<String>,
}

/// Compares `(id, version)` pairs of what runs with what is stored.
pub fn plan(memory: &[(String, i64)], stored: &[(String, i64)]) -> Plan {
    let running: HashMap<&str, i64> = memory.iter().map(|(id, v)| (id.as_str(), *v)).collect();
    let kept: HashMap<&str, i64> = stored.iter().map(|(id, v)| (id.as_str(), *v)).collect();
    let mut plan = Plan::default();
    for (id, version) in stored {
        match running.get(id.as_str()) {
            None => plan.start.push(id.clone()),
            Some(live) if live < version => plan.update.push(id.clone()),
            Some(_) => {}
        }
    }
    for (id, _) in memory {
        if !kept.contains_key(id.as_str()) {
            plan.stop.push(id.clone());
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, i64)]) -> Vec<(String, i64)> {
        list.iter().map(|(id, v)| ((*id).to_owned(), *v)).collect()
    }

    #[test]
    fn new_changed_and_deleted_apps_are_found() {
        let memory = pairs(&[("same", 3), ("changed", 1), ("deleted", 5), ("ahead", 4)]);
        let stored = pairs(&[("same", 3), ("changed", 2), ("new", 1), ("ahead", 3)]);
        assert_eq!(
            plan(&memory, &stored),
            Plan {
                start: vec!["new".into()],
                update: vec!["changed".into()],
                stop: vec!["deleted".into()],
            }
        );
        assert_eq!(plan(&stored, &stored), Plan::default());
    }
}
