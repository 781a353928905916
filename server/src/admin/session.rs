//! First-run setup, login, logout and "who am I".

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use shared::admin::{ErrorBody, LoginRequest, SessionInfo, SetupRequest, SetupStatus};

use super::auth::{self, Principal, Via};
use super::users::validated_user;
use super::{audit_row, write};
use crate::db::admin::{SessionRow, UserRow};
use crate::db::now_unix;
use crate::db::Db;
use crate::error::ApiError;
use crate::state::AppState;

/// Creates a session for `user` and answers with it and its cookie.
async fn start_session(
    req: &HttpRequest,
    state: &AppState,
    user: UserRow,
    status: StatusCode,
) -> Result<HttpResponse, ApiError> {
    let token = auth::random_token();
    let csrf_token = auth::random_token();
    let now = now_unix();
    let session = SessionRow {
        token_hash: auth::token_digest(&token),
        user_id: user.id.clone(),
        csrf_token: csrf_token.clone(),
        created_at: now,
        expires_at: now + i64::try_from(auth::SESSION_TTL.as_secs()).unwrap_or(i64::MAX),
    };
    write(&state.db, move |db| db.insert_session(&session)).await?;
    let secure = crate::http::client_info(req, &state.settings.trusted_proxies).https;
    Ok(HttpResponse::build(status)
        .cookie(auth::session_cookie(&token, secure, auth::SESSION_TTL))
        .json(SessionInfo {
            user: user.to_api(),
            csrf_token: Some(csrf_token),
        }))
}

/// Whether the first account still has to be created.
#[utoipa::path(get, path = "/admin/api/setup", tag = "session",
    responses((status = 200, body = SetupStatus)))]
pub async fn setup_status(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let count = write(&state.db, Db::count_users).await?;
    Ok(HttpResponse::Ok().json(SetupStatus { needed: count == 0 }))
}

/// Creates the first account with the one-time token printed in the server log, and logs in.
#[utoipa::path(post, path = "/admin/api/setup", tag = "session", request_body = SetupRequest,
    responses(
        (status = 201, body = SessionInfo, description = "Created and logged in"),
        (status = 403, body = ErrorBody, description = "Wrong or used setup token"),
        (status = 409, body = ErrorBody, description = "An account exists already"),
        (status = 422, body = ErrorBody),
    ))]
pub async fn setup(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<SetupRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    if write(&state.db, Db::count_users).await? > 0 {
        return Err(ApiError::conflict(
            "already_set_up",
            "An admin account exists already; log in",
        ));
    }
    let (email, name) = validated_user(&body.email, &body.name, &body.password)?;
    if !state.admin.setup.redeem(&body.token) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "setup_token_invalid",
            "The setup token is wrong or was used already (see the server log)",
        ));
    }
    let password = body.password;
    let user = write(&state.db, move |db| {
        let user = super::users::new_user(email, name, &password);
        db.insert_user(&user)?;
        let after = serde_json::to_value(user.to_api()).ok();
        db.insert_audit(&audit_row(
            "setup".into(),
            "user.create",
            "user",
            &user.id,
            None,
            after,
        ))?;
        Ok(user)
    })
    .await?;
    tracing::info!(user_id = %user.id, "first admin account created");
    start_session(&req, &state, user, StatusCode::CREATED).await
}

/// Logs in with email and password; sets the session cookie.
#[utoipa::path(post, path = "/admin/api/login", tag = "session", request_body = LoginRequest,
    responses(
        (status = 200, body = SessionInfo),
        (status = 401, body = ErrorBody, description = "Wrong email or password"),
        (status = 429, body = ErrorBody, description = "Too many failed attempts; see Retry-After"),
    ))]
pub async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let email = body.email.trim().to_lowercase();
    let ip = crate::http::client_info(&req, &state.settings.trusted_proxies).ip;
    if let Err(wait) = state.admin.throttle.check(&ip, &email) {
        tracing::warn!(%ip, "login throttled");
        let error = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            format!("Too many failed logins; try again in {wait} seconds"),
        );
        let mut response = actix_web::ResponseError::error_response(&error);
        response.headers_mut().insert(
            actix_web::http::header::RETRY_AFTER,
            actix_web::http::header::HeaderValue::from(wait),
        );
        return Ok(response);
    }
    let password = body.password.clone();
    let lookup = email.clone();
    let user = write(&state.db, move |db| {
        let user = db.find_user_by_email(&lookup)?;
        // Verify against a dummy hash for unknown emails, so timing does not reveal accounts.
        let hash = user
            .as_ref()
            .map_or(auth::dummy_hash(), |u| u.password_hash.as_str());
        let ok = auth::verify_password(hash, &password);
        Ok(user.filter(|_| ok))
    })
    .await?;
    let Some(user) = user else {
        state.admin.throttle.failed(&ip, &email);
        tracing::info!(%ip, "login failed");
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "Wrong email or password",
        ));
    };
    state.admin.throttle.succeeded(&ip, &email);
    tracing::info!(user_id = %user.id, "admin logged in");
    start_session(&req, &state, user, StatusCode::OK).await
}

/// Ends the current session.
#[utoipa::path(post, path = "/admin/api/logout", tag = "session",
    responses((status = 204), (status = 401, body = ErrorBody)),
    security(("session" = [])))]
pub async fn logout(
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if let Via::Session { token_hash, .. } = principal.via {
        write(&state.db, move |db| db.delete_session(&token_hash)).await?;
    }
    let mut gone = auth::session_cookie("", false, std::time::Duration::ZERO);
    gone.make_removal();
    Ok(HttpResponse::NoContent().cookie(gone).finish())
}

/// The caller, and for a session the CSRF token to send with writes.
#[utoipa::path(get, path = "/admin/api/me", tag = "session",
    responses((status = 200, body = SessionInfo), (status = 401, body = ErrorBody)),
    security(("session" = []), ("token" = [])))]
pub async fn me(principal: Principal) -> HttpResponse {
    let csrf_token = match principal.via {
        Via::Session { csrf_token, .. } => Some(csrf_token),
        Via::Token { .. } => None,
    };
    HttpResponse::Ok().json(SessionInfo {
        user: principal.user.to_api(),
        csrf_token,
    })
}
