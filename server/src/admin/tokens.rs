//! API tokens for automation: created (shown once), listed, revoked. Stored as SHA-256.

use actix_web::{web, HttpResponse};
use shared::admin::{ApiToken, CreatedApiToken, ErrorBody, NewApiToken};

use super::auth::{self, Principal};
use super::AdminState;
use super::{text, write, AuditRow};
use crate::db::admin::TokenRow;
use crate::db::Db;
use crate::db::{now_unix, DbError};
use crate::error::ApiError;
use crate::state::AppState;

/// Every token (revoked ones included, with `revoked_at`).
#[utoipa::path(get, path = "/admin/api/tokens", tag = "tokens",
    responses((status = 200, body = [ApiToken]), (status = 401, body = ErrorBody)),
    security(("session" = []), ("token" = [])))]
pub async fn list_tokens(
    _: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let tokens = write(&state.db, Db::list_tokens).await?;
    Ok(HttpResponse::Ok().json(tokens.iter().map(TokenRow::to_api).collect::<Vec<_>>()))
}

/// Creates a token acting as the caller. Its value is in this response only.
#[utoipa::path(post, path = "/admin/api/tokens", tag = "tokens", request_body = NewApiToken,
    responses((status = 201, body = CreatedApiToken), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("session" = []), ("token" = [])))]
pub async fn create_token(
    principal: Principal,
    state: web::Data<AppState>,
    body: web::Json<NewApiToken>,
) -> Result<HttpResponse, ApiError> {
    let name = text("name", &body.name, 100)?;
    let value = format!("{}{}", auth::TOKEN_PREFIX, auth::random_token());
    let row = TokenRow {
        id: uuid::Uuid::new_v4().to_string(),
        user_id: principal.user.id.clone(),
        name,
        token_hash: auth::token_digest(&value),
        created_at: now_unix(),
        last_used_at: None,
        revoked_at: None,
    };
    let actor = principal.actor();
    let stored = row.clone();
    let created = write(&state.db, move |db| {
        db.insert_token(&stored)?;
        // The caller's credential may have ended meanwhile (a password change revokes every
        // token and session of the user): checked after the insert, so that either the check
        // sees the revocation or the revocation covers this new token.
        if !principal.still_valid(db)? {
            db.revoke_token(&stored.id)?;
            return Ok(false);
        }
        let after = serde_json::to_value(stored.to_api()).ok();
        db.insert_audit(&AuditRow::new(
            actor,
            "token.create",
            "token",
            &stored.id,
            None,
            after,
        ))?;
        Ok(true)
    })
    .await?;
    if !created {
        return Err(ApiError::new(
            actix_web::http::StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "The session or token ended meanwhile; log in again",
        ));
    }
    Ok(HttpResponse::Created().json(CreatedApiToken {
        info: row.to_api(),
        token: value,
    }))
}

/// Revokes a token at once.
#[utoipa::path(delete, path = "/admin/api/tokens/{id}", tag = "tokens",
    params(("id" = String, Path, description = "Token id")),
    responses((status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "No such token, or already revoked")),
    security(("session" = []), ("token" = [])))]
pub async fn revoke_token(
    principal: Principal,
    state: web::Data<AppState>,
    admin: web::Data<AdminState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let actor = principal.actor();
    let id = id.into_inner();
    crate::db::blocking(&state.db, move |db| {
        let token = db.revoke_token(&id)?;
        let before = serde_json::to_value(token.to_api()).ok();
        db.insert_audit(&AuditRow::new(
            actor,
            "token.revoke",
            "token",
            &token.id,
            before,
            None,
        ))
    })
    .await
    .map_err(|e| match e {
        DbError::NotFound => ApiError::not_found("No such token, or it was revoked already"),
        other => other.into(),
    })?;
    admin.revoked();
    Ok(HttpResponse::NoContent().finish())
}
