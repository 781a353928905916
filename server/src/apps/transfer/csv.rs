//! CSV as spreadsheets and database tools write it (RFC 4180: commas, quoted cells with `""`
//! for a quote, CRLF or LF), and the plain `id,key,secret,name` list for Pusher apps, whose
//! credentials people copy from Pusher's dashboard.

use super::fields::{self, Builder, Fields};
use super::{Entry, Refused, TransferError};
use crate::apps::AppConfig;
use serde_json::Value;

/// The rows of `text` as cells.
pub fn rows(text: &str) -> Result<Vec<Vec<String>>, TransferError> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut cell = String::new();
    let mut quoted = false;
    let mut chars = text.trim_start_matches('\u{feff}').chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            (true, '"') => quoted = false,
            (false, '"') if cell.is_empty() => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut cell)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut cell));
                rows.push(std::mem::take(&mut row));
            }
            (_, c) => cell.push(c),
        }
    }
    if quoted {
        return Err(TransferError::Unreadable(
            "the CSV has a quoted cell that never ends".into(),
        ));
    }
    if !cell.is_empty() || !row.is_empty() {
        row.push(cell);
        rows.push(row);
    }
    rows.retain(|r| r.iter().any(|c| !c.trim().is_empty()));
    Ok(rows)
}

/// The rows after the header, each cell named by its column.
pub fn records(text: &str) -> Result<Vec<Vec<(String, String)>>, TransferError> {
    let mut rows = rows(text)?.into_iter();
    let header: Vec<String> = rows
        .next()
        .ok_or_else(|| TransferError::Unreadable("the CSV is empty".into()))?
        .into_iter()
        .map(|h| h.trim().to_owned())
        .collect();
    rows.enumerate()
        .map(|(i, row)| {
            if row.len() != header.len() {
                return Err(TransferError::Unreadable(format!(
                    "CSV line {} has {} cells; the header has {}",
                    i + 2,
                    row.len(),
                    header.len()
                )));
            }
            Ok(header.iter().cloned().zip(row).collect())
        })
        .collect()
}

/// A cell as CSV writes it: quoted when it must be.
fn cell(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

/// A header and rows as CSV text.
pub fn write(header: &[String], rows: impl Iterator<Item = Vec<String>>) -> String {
    let line =
        |cells: &[String]| cells.iter().map(|c| cell(c)).collect::<Vec<_>>().join(",") + "\n";
    let mut out = line(header);
    for row in rows {
        out.push_str(&line(&row));
    }
    out
}

const PUSHER_COLUMNS: [&str; 4] = ["id", "key", "secret", "name"];

/// `id,key,secret,name`, with or without that header.
pub fn parse_pusher(text: &str) -> Result<Vec<Entry>, TransferError> {
    let mut rows = rows(text)?;
    let header: Vec<String> = match rows.first() {
        Some(first) if first.iter().any(|c| fields::norm(c) == "key") => {
            rows.remove(0).iter().map(|c| fields::norm(c)).collect()
        }
        _ => PUSHER_COLUMNS.iter().map(|c| (*c).to_owned()).collect(),
    };
    if let Some(bad) = header
        .iter()
        .find(|h| !PUSHER_COLUMNS.contains(&h.as_str()))
    {
        return Err(TransferError::Unreadable(format!(
            "unknown column {bad:?}: this format has id, key, secret and name"
        )));
    }
    Ok(rows
        .into_iter()
        .enumerate()
        .map(|(i, row)| {
            if row.len() > header.len() {
                return Err(Refused {
                    label: format!("app {}", i + 1),
                    message: format!("{} cells; expected {}", row.len(), header.join(",")),
                });
            }
            let mut fields = Fields::new(
                header
                    .iter()
                    .cloned()
                    .zip(row.into_iter().map(Value::String))
                    .collect(),
            );
            let (id, key, secret) = fields::credentials(&mut fields, i, &["id"])?;
            let mut app = Builder::new();
            if let Some((name, v)) = fields.take(&["name"]) {
                app.set(fields::Target::Name, &name, &v)
                    .map_err(|message| Refused {
                        label: id.clone(),
                        message,
                    })?;
            }
            Ok(app.finish(id, key, secret))
        })
        .collect())
}

pub fn render_pusher(apps: &[AppConfig], with_secrets: bool) -> String {
    let header: Vec<String> = PUSHER_COLUMNS.iter().map(|c| (*c).to_owned()).collect();
    write(
        &header,
        apps.iter().map(|a| {
            vec![
                a.id.clone(),
                a.key.clone(),
                if with_secrets {
                    a.secret.clone()
                } else {
                    String::new()
                },
                a.name.clone(),
            ]
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_cells_commas_and_line_ends() {
        let rows = rows("a,\"b,c\",\"say \"\"hi\"\"\"\r\n\n1,2,3").unwrap();
        assert_eq!(
            rows,
            vec![vec!["a", "b,c", "say \"hi\""], vec!["1", "2", "3"]]
        );
        assert!(super::rows("\"open").is_err());
    }

    #[test]
    fn pusher_list_with_or_without_header() {
        let with = parse_pusher(
            "id,key,secret,name\n1234567,0123456789abcdef0123,fedcba9876543210fedc,\"Shop, EU\"\n",
        )
        .unwrap();
        let without =
            parse_pusher("1234567,0123456789abcdef0123,fedcba9876543210fedc,\"Shop, EU\"\n")
                .unwrap();
        assert_eq!(with, without);
        let app = with[0].as_ref().unwrap();
        assert_eq!(app.settings.name.as_deref(), Some("Shop, EU"));
        assert_eq!(app.secret.as_deref(), Some("fedcba9876543210fedc"));
        assert!(parse_pusher("id,key,cluster\n1,2,eu\n").is_err());
        let short = parse_pusher("id,key,secret,name\n1\n").unwrap();
        assert_eq!(short[0].as_ref().unwrap_err().message, "the app has no key");
    }

    #[test]
    fn export_reads_back() {
        let mut app = AppConfig::generate("Name, with \"quotes\"");
        app.id = "42".into();
        let text = render_pusher(&[app.clone()], true);
        let read = parse_pusher(&text).unwrap().remove(0).unwrap();
        assert_eq!(read.settings.name.as_deref(), Some(app.name.as_str()));
        assert_eq!(read.secret.as_deref(), Some(app.secret.as_str()));
        let hidden = parse_pusher(&render_pusher(&[app.clone()], false))
            .unwrap()
            .remove(0)
            .unwrap();
        assert_eq!(hidden.secret, None);
    }
}
