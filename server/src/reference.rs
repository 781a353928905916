//! The documentation site's reference pages that are rendered from the code, so that they
//! cannot drift from it: the settings (from the doc comments and defaults of [`Settings`] and
//! the limits table) and the admin API's endpoints (from its OpenAPI document).
//!
//! The rendered pages are committed under `docs/generated/` and included by the book. The tests
//! below fail when a committed page differs from what the code renders (or when a setting has no
//! doc comment); `UPDATE_DOCS=1 cargo test -p reverb-pusher reference` rewrites them.

use std::fmt::Write as _;

use serde_json::Value;

use crate::settings::{Settings, FIELDS};

/// The source of the settings module: its doc comments are the reference's words.
const SETTINGS_SOURCE: &str = include_str!("settings.rs");

/// Each field of `struct Settings` with its doc comment (lines joined by spaces), in
/// declaration order.
pub fn documented_settings() -> Vec<(String, String)> {
    let body = SETTINGS_SOURCE
        .split_once("pub struct Settings {")
        .and_then(|(_, rest)| rest.split_once("\n}\n"))
        .map(|(body, _)| body)
        .expect("struct Settings in settings.rs");
    let mut fields = Vec::new();
    let mut doc: Vec<&str> = Vec::new();
    for line in body.lines().map(str::trim) {
        if let Some(text) = line.strip_prefix("///") {
            doc.push(text.trim());
        } else if let Some(rest) = line.strip_prefix("pub ") {
            let name = rest.split(':').next().unwrap_or_default().trim();
            fields.push((name.to_owned(), doc.join(" ")));
            doc.clear();
        } else if !line.starts_with("#[") && !line.is_empty() && !line.starts_with("//") {
            panic!("unexpected line in struct Settings: {line}");
        }
    }
    fields
}

/// A setting's default as it would be written in the TOML file.
fn toml_value(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "unset".to_owned(),
        Some(Value::String(s)) => format!("`\"{s}\"`"),
        Some(Value::Array(items)) if items.is_empty() => "`[]`".to_owned(),
        Some(other) => format!("`{other}`"),
    }
}

/// A table cell: no line breaks, no column separators.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// The settings reference page (`docs/generated/settings.md`).
pub fn settings_page() -> String {
    let defaults = serde_json::to_value(Settings::default()).expect("settings serialise");
    let mut out = String::from(
        "<!-- Generated from server/src/settings.rs by `UPDATE_DOCS=1 cargo test -p \
         reverb-pusher reference`; do not edit. -->\n",
    );
    for (field, doc) in documented_settings() {
        let env = format!("REVERB_PUSHER_{}", field.to_ascii_uppercase());
        let default = if field == "default_app_limits" {
            "the limits below".to_owned()
        } else {
            toml_value(defaults.get(&field))
        };
        let _ = write!(
            out,
            "\n## `{field}`\n\nEnvironment: `{env}` · default: {default}\n\n{doc}\n"
        );
    }
    out.push_str(
        "\n## Per-app limits: `[default_app_limits]`\n\n\
         The limits of newly created apps. Each is optional; a missing one takes the default \
         below. In a file, a table: `[default_app_limits]` then `max_connections = 500`; in the \
         environment, an inline table: \
         `REVERB_PUSHER_DEFAULT_APP_LIMITS='{max_connections=500}'`. Every app can change its \
         own limits later (admin panel, admin API, `reverb-pusher app set ID --limit \
         FIELD=VALUE`), within the range shown.\n\n\
         | limit | default | range | meaning |\n|---|---|---|---|\n",
    );
    for spec in &shared::limits::LIMITS {
        let meaning = if spec.help.is_empty() {
            spec.label.to_owned()
        } else {
            format!("{} ({})", spec.label, spec.help)
        };
        let _ = writeln!(
            out,
            "| `{}` | `{}` | {} to {} | {} |",
            spec.field,
            spec.default,
            spec.min,
            spec.max,
            cell(&meaning)
        );
    }
    out
}

/// The admin API's endpoint table (`docs/generated/admin-api.md`).
pub fn admin_api_page() -> String {
    use utoipa::OpenApi as _;
    let doc = serde_json::to_value(crate::admin::AdminApiDoc::openapi()).expect("openapi");
    let mut out = String::from(
        "<!-- Generated from the server's OpenAPI document by `UPDATE_DOCS=1 cargo test -p \
         reverb-pusher reference`; do not edit. -->\n\n\
         | method | path | what it does | answers |\n|---|---|---|---|\n",
    );
    let paths = doc["paths"].as_object().expect("paths");
    let mut rows: Vec<(&str, &str, &Value)> = Vec::new();
    for (path, item) in paths {
        for (method, op) in item.as_object().expect("path item") {
            rows.push((path, method, op));
        }
    }
    rows.sort_by_key(|(path, method, _)| (*path, *method));
    for (path, method, op) in rows {
        let summary = op["summary"]
            .as_str()
            .or_else(|| op["description"].as_str())
            .unwrap_or("");
        let statuses: Vec<&str> = op["responses"]
            .as_object()
            .map(|r| r.keys().map(String::as_str).collect())
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "| `{}` | `{path}` | {} | {} |",
            method.to_ascii_uppercase(),
            cell(summary),
            statuses.join(", ")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(file: &str, rendered: &str) {
        let path = format!("{}/../docs/generated/{file}", env!("CARGO_MANIFEST_DIR"));
        if std::env::var_os("UPDATE_DOCS").is_some() {
            std::fs::write(&path, rendered).unwrap();
            return;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == rendered,
            "docs/generated/{file} is out of date: run \
             `UPDATE_DOCS=1 cargo test -p reverb-pusher reference` and commit the result"
        );
    }

    #[test]
    fn every_setting_has_a_doc_comment_for_the_reference() {
        let documented = documented_settings();
        let mut names: Vec<&str> = documented.iter().map(|(n, _)| n.as_str()).collect();
        let mut fields = FIELDS.to_vec();
        names.sort_unstable();
        fields.sort_unstable();
        assert_eq!(names, fields, "the reader of settings.rs missed a field");
        for (name, doc) in &documented {
            assert!(
                doc.len() >= 10,
                "setting `{name}` needs a doc comment: it is its entry in the configuration \
                 reference"
            );
        }
    }

    #[test]
    fn settings_reference_is_in_step_with_the_code() {
        let page = settings_page();
        for field in FIELDS {
            assert!(
                page.contains(&format!("\n## `{field}`\n")),
                "{field} missing"
            );
        }
        check("settings.md", &page);
    }

    #[test]
    fn admin_api_reference_is_in_step_with_the_openapi_document() {
        let page = admin_api_page();
        assert!(page.contains("| `POST` | `/admin/api/apps` |"));
        check("admin-api.md", &page);
    }

    #[test]
    fn served_openapi_document_is_in_the_book() {
        use utoipa::OpenApi as _;
        let json = crate::admin::AdminApiDoc::openapi()
            .to_pretty_json()
            .unwrap();
        let path = format!(
            "{}/../docs/src/reference/openapi.json",
            env!("CARGO_MANIFEST_DIR")
        );
        if std::env::var_os("UPDATE_DOCS").is_some() {
            std::fs::write(&path, format!("{json}\n")).unwrap();
            return;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == format!("{json}\n"),
            "docs/src/reference/openapi.json is out of date: run \
             `UPDATE_DOCS=1 cargo test -p reverb-pusher reference` and commit the result"
        );
    }
}
