//! Running an import: parse, plan against the stored apps, and unless it is a dry run or the
//! plan has problems, write each change through [`AppService`] (stored with compare-and-swap,
//! audited as `app.import`, applied live). Nothing is written while any entry is in conflict or
//! invalid, so a file is imported whole or not at all; a write that loses a race (another
//! writer took the key meanwhile) is reported on its entry, and running the same file again
//! finishes the rest, since done entries plan "unchanged".

use shared::transfer::{ImportAction, ImportReport};

use super::plan::{self, Change};
use super::{Format, TransferError};
use crate::apps::{AppError, AppService};

/// Why an import did not run.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    File(#[from] TransferError),
    #[error(transparent)]
    App(#[from] AppError),
}

impl AppService {
    /// Imports the apps of `text` (see the module documentation). The report says what was
    /// (or, for a dry run or a plan with problems, would be) done to each app.
    pub async fn import(
        &self,
        actor: &str,
        text: &str,
        format: Option<Format>,
        dry_run: bool,
    ) -> Result<ImportReport, ImportError> {
        let (format, entries) = super::parse(text, format)?;
        let stored = self.list().await?;
        let planned = plan::plan(entries, &stored, |name| self.template(name));
        let mut report = ImportReport {
            format,
            dry_run,
            applied: false,
            apps: planned.iter().map(|p| p.report.clone()).collect(),
        };
        if dry_run || report.problems() > 0 {
            return Ok(report);
        }
        for (planned, entry) in planned.into_iter().zip(report.apps.iter_mut()) {
            let written = match planned.change {
                None => continue,
                Some(Change::Create(config)) => {
                    self.add_as(actor, "app.import", config).await.map(drop)
                }
                Some(Change::Update(app)) => self
                    .modify(actor, "app.import", &entry.id, move |c| {
                        plan::apply_imported(c, &app)
                    })
                    .await
                    .map(drop),
            };
            match written {
                Ok(()) => {}
                Err(e @ (AppError::Taken(_) | AppError::NotFound(_))) => {
                    entry.action = ImportAction::Conflict;
                    entry.message = Some(format!(
                        "{e} (changed by someone else during the import; on MySQL/MariaDB \
                             also an id or key that differs from another only in letter case)"
                    ));
                }
                Err(AppError::Invalid(e)) => {
                    entry.action = ImportAction::Invalid;
                    entry.message = Some(e.message);
                }
                // The database failed: what was written stays; a rerun does the rest.
                Err(e) => return Err(e.into()),
            }
        }
        report.applied = true;
        Ok(report)
    }
}

/// The report for people: one line per app, what was not mapped under it, and a summary.
pub fn describe(report: &ImportReport) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let mode = if report.dry_run {
        " (dry run: nothing is changed)"
    } else if !report.applied {
        " (nothing was changed)"
    } else {
        ""
    };
    let _ = writeln!(
        out,
        "Import of {} apps read as {}{mode}:",
        report.apps.len(),
        report.format
    );
    let mut counts = [0usize; 5];
    for app in &report.apps {
        let (slot, verb) = match app.action {
            ImportAction::Create => (0, "create"),
            ImportAction::Update => (1, "update"),
            ImportAction::Unchanged => (2, "unchanged"),
            ImportAction::Conflict => (3, "CONFLICT"),
            ImportAction::Invalid => (4, "INVALID"),
        };
        counts[slot] += 1;
        let _ = write!(out, "  {verb:<10} {}", app.id);
        if !app.key.is_empty() {
            let _ = write!(out, "  key {}", app.key);
        }
        if !app.name.is_empty() {
            let _ = write!(out, "  {:?}", app.name);
        }
        if !app.changes.is_empty() {
            let _ = write!(out, "  changes: {}", app.changes.join(", "));
        }
        if let Some(message) = &app.message {
            let _ = write!(out, "  {message}");
        }
        out.push('\n');
        for unmapped in &app.unmapped {
            let _ = writeln!(out, "      not imported: {unmapped}");
        }
    }
    let _ = write!(
        out,
        "{} to create, {} to update, {} unchanged, {} conflict(s), {} invalid.",
        counts[0], counts[1], counts[2], counts[3], counts[4]
    );
    out
}
