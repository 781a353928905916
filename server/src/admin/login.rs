//! First-run setup, login, logout and "who am I", and the timer that purges expired sessions.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use shared::admin::{ErrorBody, LoginRequest, SessionInfo, SetupRequest, SetupStatus};

use super::auth::{self, Principal, SetupRefusal, Via};
use super::throttle::throttled;
use super::users::{validated_email, validated_user};
use super::write;
use super::AdminState;
use crate::db::admin::{SessionRow, UserRow};
use crate::db::now_unix;
use crate::db::Db;
use crate::error::ApiError;
use crate::http::client::address_key;
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
    let verified_hash = user.password_hash.clone();
    let user_id = user.id.clone();
    let still_valid = write(&state.db, move |db| {
        db.insert_session(&session)?;
        // A password change that crossed this login (verified against the old password) has
        // either already stored its new hash, seen here, or will end this session after its
        // update: checked after the insert, so no interleaving leaves the new session alive.
        if db.get_user(&user_id)?.password_hash == verified_hash {
            return Ok(true);
        }
        db.delete_session(&session.token_hash)?;
        Ok(false)
    })
    .await?;
    if !still_valid {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "The password changed meanwhile; log in again",
        ));
    }
    let secure = crate::http::client::client_info(req, &state.settings.trusted_proxies).https;
    Ok(HttpResponse::build(status)
        .cookie(auth::session_cookie(&token, secure, auth::SESSION_TTL))
        .json(SessionInfo {
            user: user.to_api(),
            csrf_token: Some(csrf_token),
        }))
}

/// Issues and shows a new setup token if the current one expired (at most once an hour, so
/// an anonymous caller cannot flood the terminal).
fn renew_setup_token(admin: &AdminState) {
    if let Some(token) = admin.setup.renew_if_expired() {
        tracing::warn!("the setup token expired; a new one is shown on the server's terminal");
        auth::show_setup_token(&token, &admin.setup_file);
    }
}

/// Whether the first account still has to be created. While it has, an expired setup token is
/// replaced by a new one, shown on the server's terminal.
#[utoipa::path(get, path = "/admin/api/setup", tag = "session",
    responses((status = 200, body = SetupStatus)))]
pub async fn setup_status(
    state: web::Data<AppState>,
    admin: web::Data<AdminState>,
) -> Result<HttpResponse, ApiError> {
    let count = write(&state.db, Db::count_users).await?;
    if count == 0 {
        renew_setup_token(&admin);
    }
    Ok(HttpResponse::Ok().json(SetupStatus { needed: count == 0 }))
}

/// Creates the first account with the one-time setup token shown on the server's terminal
/// (valid for an hour), and logs in.
#[utoipa::path(post, path = "/admin/api/setup", tag = "session", request_body = SetupRequest,
    responses(
        (status = 201, body = SessionInfo, description = "Created and logged in"),
        (status = 403, body = ErrorBody, description = "Wrong, used or expired setup token"),
        (status = 409, body = ErrorBody, description = "An account exists already"),
        (status = 422, body = ErrorBody),
        (status = 429, body = ErrorBody, description = "Busy hashing passwords; see Retry-After"),
    ))]
pub async fn setup(
    req: HttpRequest,
    state: web::Data<AppState>,
    admin: web::Data<AdminState>,
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
    // Taken before the token is spent, so that a busy server does not burn it.
    let permit = admin.hashing.permit()?;
    match admin.setup.redeem(&body.token) {
        Ok(()) => {}
        Err(SetupRefusal::Wrong) => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "setup_token_invalid",
                "The setup token is wrong or was used already (see the server's terminal)",
            ))
        }
        Err(SetupRefusal::Expired) => {
            renew_setup_token(&admin);
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "setup_token_expired",
                "The setup token expired after an hour; a new one is shown on the server's terminal",
            ));
        }
    }
    let password = body.password;
    let spent = body.token.clone();
    let user = write(&state.db, move |db| {
        let _permit = permit;
        let user = super::users::new_user(email, name, &password);
        db.create_user(&user, "setup".into())?;
        Ok(user)
    })
    .await
    .inspect_err(|_| {
        // Nothing was created: the token must still work (it is spent only by a success).
        admin.setup.restore(&spent);
    })?;
    auth::forget_setup_token(&admin.setup_file);
    tracing::info!(user_id = %user.id, "first admin account created");
    start_session(&req, &state, user, StatusCode::CREATED).await
}

/// Logs in with email and password; sets the session cookie.
#[utoipa::path(post, path = "/admin/api/login", tag = "session", request_body = LoginRequest,
    responses(
        (status = 200, body = SessionInfo),
        (status = 401, body = ErrorBody, description = "Wrong email or password"),
        (status = 429, body = ErrorBody, description = "Too many failed attempts from this address or for this account, or busy hashing passwords; see Retry-After"),
    ))]
pub async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    admin: web::Data<AdminState>,
    body: web::Json<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    // A bounded key: an invalid address cannot be an account, and costs no hashing.
    let email = validated_email(&body.email).ok();
    let ip =
        address_key(&crate::http::client::client_info(&req, &state.settings.trusted_proxies).ip);
    let throttle = &admin.throttle;
    // Counted as a failure from here on; a success takes it back.
    if let Err(wait) = throttle.begin(&ip, email.as_deref()) {
        tracing::warn!(client = %ip, wait, "login throttled");
        return Err(throttled(wait));
    }
    let user = match email.clone() {
        Some(email) => verify_login(&state, &admin, email, body.password.clone()).await?,
        None => None,
    };
    let Some(user) = user else {
        // The request line (status 401) is logged by the API call log; this adds nothing.
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "Wrong email or password",
        ));
    };
    throttle.succeeded(&ip, &user.email);
    tracing::info!(user_id = %user.id, client = %ip, "admin logged in");
    start_session(&req, &state, user, StatusCode::OK).await
}

/// The user with this email if the password is theirs, under a hashing slot.
async fn verify_login(
    state: &AppState,
    admin: &AdminState,
    email: String,
    password: String,
) -> Result<Option<UserRow>, ApiError> {
    let permit = admin.hashing.permit()?;
    write(&state.db, move |db| {
        let _permit = permit;
        let user = db.find_user_by_email(&email)?;
        // Verify against a dummy hash for unknown emails, so timing does not reveal accounts.
        let hash = user
            .as_ref()
            .map_or(auth::dummy_hash(), |u| u.password_hash.as_str());
        let ok = auth::verify_password(hash, &password);
        Ok(user.filter(|_| ok))
    })
    .await
}

/// Ends the current session.
#[utoipa::path(post, path = "/admin/api/logout", tag = "session",
    responses((status = 204), (status = 401, body = ErrorBody)),
    security(("session" = [])))]
pub async fn logout(
    principal: Principal,
    state: web::Data<AppState>,
    admin: web::Data<AdminState>,
) -> Result<HttpResponse, ApiError> {
    if let Via::Session { token_hash, .. } = principal.via {
        write(&state.db, move |db| db.delete_session(&token_hash)).await?;
        admin.revoked();
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

/// Deletes expired sessions at start and then every [`auth::SESSION_PURGE_EVERY`], for as long
/// as the server runs. They no longer authenticate anyone; this only keeps the table small.
pub async fn purge_expired_sessions(db: Db) {
    let mut every = tokio::time::interval(auth::SESSION_PURGE_EVERY);
    loop {
        every.tick().await;
        match crate::db::blocking(&db, Db::purge_expired_sessions).await {
            Ok(0) => {}
            Ok(purged) => tracing::info!(purged, "expired admin sessions deleted"),
            Err(error) => tracing::warn!(%error, "cannot purge expired admin sessions"),
        }
    }
}
