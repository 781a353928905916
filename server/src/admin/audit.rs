//! The audit log of configuration changes, newest first, in pages.

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use shared::admin::{AuditEntry, AuditPage, ErrorBody};

use super::auth::Principal;
use super::write;
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct PageQuery {
    /// Page number, from 1.
    pub page: Option<u32>,
    /// Entries per page, 1 to 200 (default 50).
    pub per_page: Option<u32>,
}

/// A page of the audit log.
#[utoipa::path(get, path = "/admin/api/audit", tag = "audit", params(PageQuery),
    responses((status = 200, body = AuditPage), (status = 401, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("session" = []), ("token" = [])))]
pub async fn list_audit(
    _: Principal,
    state: web::Data<AppState>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = query.page.unwrap_or(1);
    let per_page = query.per_page.unwrap_or(50);
    if page == 0 {
        return Err(ApiError::validation("page", "page starts at 1"));
    }
    if !(1..=200).contains(&per_page) {
        return Err(ApiError::validation(
            "per_page",
            "per_page must be between 1 and 200",
        ));
    }
    let (rows, total) = write(&state.db, move |db| db.audit_page(page, per_page)).await?;
    let entries = rows
        .into_iter()
        .map(|r| AuditEntry {
            id: r.id,
            at: r.at,
            actor: r.actor,
            action: r.action,
            target_type: r.target_type,
            target_id: r.target_id,
            before: r.before_json.and_then(|j| serde_json::from_str(&j).ok()),
            after: r.after_json.and_then(|j| serde_json::from_str(&j).ok()),
        })
        .collect();
    Ok(HttpResponse::Ok().json(AuditPage {
        entries,
        page,
        per_page,
        total: u64::try_from(total).unwrap_or(0),
    }))
}
