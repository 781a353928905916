//! Admin users. Every user is an admin; nobody can delete themselves and the last user stays.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use shared::admin::{ErrorBody, NewUser, User, UserPatch};

use super::auth::{self, Principal, Via};
use super::throttle::throttled;
use super::AdminState;
use super::{text, write, AuditRow};
use crate::db::admin::{DeleteUserError, UserRow};
use crate::db::Db;
use crate::db::{now_unix, DbError};
use crate::error::ApiError;
use crate::http::client::address_key;
use crate::state::AppState;

use shared::admin::{MAX_PASSWORD, MIN_PASSWORD};

pub fn validated_email(email: &str) -> Result<String, ApiError> {
    let email = text("email", email, 254)?.to_lowercase();
    let valid = email.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty() && domain.contains('.') && !domain.starts_with('.')
    });
    if !valid || email.contains(char::is_whitespace) {
        return Err(ApiError::validation(
            "email",
            "email must be an address like name@example.com",
        ));
    }
    Ok(email)
}

pub fn validated_password(password: &str) -> Result<(), ApiError> {
    let len = password.chars().count();
    if len < MIN_PASSWORD {
        return Err(ApiError::validation(
            "password",
            format!("password must be at least {MIN_PASSWORD} characters"),
        ));
    }
    if len > MAX_PASSWORD {
        return Err(ApiError::validation(
            "password",
            format!("password must be at most {MAX_PASSWORD} characters"),
        ));
    }
    Ok(())
}

/// `(email, name)` of a new user, normalised, once every field checks out.
pub fn validated_user(
    email: &str,
    name: &str,
    password: &str,
) -> Result<(String, String), ApiError> {
    let email = validated_email(email)?;
    let name = text("name", name, 100)?;
    validated_password(password)?;
    Ok((email, name))
}

/// A new user record with a fresh id and an argon2id hash of `password` (already validated).
pub fn new_user(email: String, name: String, password: &str) -> UserRow {
    let now = now_unix();
    UserRow {
        id: uuid::Uuid::new_v4().to_string(),
        email,
        name,
        password_hash: auth::hash_password(password),
        created_at: now,
        updated_at: now,
    }
}

fn email_taken(e: DbError) -> ApiError {
    match e {
        DbError::Conflict => ApiError::conflict("email_taken", "Another user has this email"),
        other => other.into(),
    }
}

/// Every admin user.
#[utoipa::path(get, path = "/admin/api/users", tag = "users",
    responses((status = 200, body = [User]), (status = 401, body = ErrorBody)),
    security(("session" = []), ("token" = [])))]
pub async fn list_users(
    _: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let users = write(&state.db, Db::list_users).await?;
    Ok(HttpResponse::Ok().json(users.iter().map(UserRow::to_api).collect::<Vec<_>>()))
}

/// Adds a user.
#[utoipa::path(post, path = "/admin/api/users", tag = "users", request_body = NewUser,
    responses((status = 201, body = User), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "Email taken"), (status = 422, body = ErrorBody),
        (status = 429, body = ErrorBody, description = "Busy hashing passwords; see Retry-After")),
    security(("session" = []), ("token" = [])))]
pub async fn create_user(
    principal: Principal,
    state: web::Data<AppState>,
    admin: web::Data<AdminState>,
    body: web::Json<NewUser>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let (email, name) = validated_user(&body.email, &body.name, &body.password)?;
    let actor = principal.actor();
    let permit = admin.hashing.permit()?;
    let user = crate::db::blocking(&state.db, move |db| {
        let _permit = permit;
        let user = new_user(email, name, &body.password);
        db.create_user(&user, actor)?;
        Ok(user)
    })
    .await
    .map_err(email_taken)?;
    Ok(HttpResponse::Created().json(user.to_api()))
}

/// The new password of a patch, checked; changing your own also needs `current_password`.
fn password_change(patch: &UserPatch, own: bool) -> Result<Option<String>, ApiError> {
    let Some(password) = &patch.password else {
        return Ok(None);
    };
    validated_password(password)?;
    if own && patch.current_password.as_deref().unwrap_or("").is_empty() {
        return Err(ApiError::validation(
            "current_password",
            "current_password is required to change your own password",
        ));
    }
    Ok(Some(password.clone()))
}

fn wrong_current_password() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "current_password_wrong",
        "The current password is wrong",
    )
}

/// A validated change to one user, ready to store.
struct UserChange {
    id: String,
    email: Option<String>,
    name: Option<String>,
    new_password: Option<String>,
    /// The caller's current password, to check first (own password changes only).
    current: Option<String>,
    /// The caller's session, which survives their own password change.
    keep: Option<String>,
    actor: String,
}

/// Stores a change with its audit record in one transaction under the user's row lock; a
/// password change also ends the user's other sessions and revokes their tokens there.
/// `Ok(Err(email))` when the current password is wrong. Runs on the blocking pool (it hashes).
fn store_user_change(db: &Db, change: UserChange) -> Result<Result<UserRow, String>, DbError> {
    // Hashed before the transaction: the row lock is held for as short a time as possible.
    let new_hash = change.new_password.as_deref().map(auth::hash_password);
    let UserChange {
        id,
        email,
        name,
        current,
        keep,
        actor,
        ..
    } = change;
    let password_changed = new_hash.is_some();
    let stored = db.change_user(
        &id,
        keep.as_deref(),
        |before| {
            if let Some(current) = &current {
                if !auth::verify_password(&before.password_hash, current) {
                    return None;
                }
            }
            let mut user = before.clone();
            if let Some(email) = email {
                user.email = email;
            }
            if let Some(name) = name {
                user.name = name;
            }
            if let Some(hash) = new_hash {
                user.password_hash = hash;
            }
            user.updated_at = now_unix();
            Some(user)
        },
        |before, after| {
            let mut after_json = serde_json::to_value(after.to_api()).ok();
            if password_changed {
                if let Some(after_json) = after_json.as_mut() {
                    after_json["password"] = "changed".into();
                }
            }
            let before_json = serde_json::to_value(before.to_api()).ok();
            AuditRow::new(
                actor,
                "user.update",
                "user",
                &after.id,
                before_json,
                after_json,
            )
        },
    )?;
    Ok(stored
        .map(|(_, after)| after)
        .map_err(|before| before.email))
}

/// Changes a user's name, email or password. Changing your own password needs the current one;
/// any password change ends the user's other sessions and revokes all their API tokens.
#[utoipa::path(patch, path = "/admin/api/users/{id}", tag = "users", request_body = UserPatch,
    params(("id" = String, Path, description = "User id")),
    responses((status = 200, body = User), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "CSRF token, or current_password wrong"),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "Invalid field, or current_password missing"),
        (status = 429, body = ErrorBody, description = "Busy hashing passwords, or too many wrong current passwords; see Retry-After")),
    security(("session" = []), ("token" = [])))]
pub async fn update_user(
    req: HttpRequest,
    principal: Principal,
    state: web::Data<AppState>,
    admin: web::Data<AdminState>,
    id: web::Path<String>,
    body: web::Json<UserPatch>,
) -> Result<HttpResponse, ApiError> {
    let patch = body.into_inner();
    let email = patch.email.as_deref().map(validated_email).transpose()?;
    let name = patch
        .name
        .as_deref()
        .map(|n| text("name", n, 100))
        .transpose()?;
    let own = principal.user.id == *id;
    let new_password = password_change(&patch, own)?;
    let current = (own && new_password.is_some())
        .then(|| patch.current_password.clone())
        .flatten();
    // Guessing the current password with a stolen session counts as failed logins.
    let ip =
        address_key(&crate::http::client::client_info(&req, &state.settings.trusted_proxies).ip);
    if current.is_some() {
        admin
            .throttle
            .check(&ip, Some(&principal.user.email))
            .map_err(throttled)?;
    }
    let permit = new_password
        .as_ref()
        .map(|_| admin.hashing.permit())
        .transpose()?;
    let actor = principal.actor();
    let keep = match &principal.via {
        Via::Session { token_hash, .. } if own => Some(token_hash.clone()),
        _ => None,
    };
    let change = UserChange {
        id: id.into_inner(),
        email,
        name,
        new_password,
        current,
        keep,
        actor,
    };
    let changed = change.new_password.is_some();
    let outcome = crate::db::blocking(&state.db, move |db| {
        let _permit = permit;
        store_user_change(db, change)
    })
    .await
    .map_err(email_taken)?;
    match outcome {
        Ok(user) => {
            if changed {
                admin.revoked();
            }
            Ok(HttpResponse::Ok().json(user.to_api()))
        }
        Err(email) => {
            admin.throttle.failed(&ip, Some(&email));
            Err(wrong_current_password())
        }
    }
}

/// Removes a user. Refused for yourself (403) and for the last user (409).
#[utoipa::path(delete, path = "/admin/api/users/{id}", tag = "users",
    params(("id" = String, Path, description = "User id")),
    responses((status = 204), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "You cannot delete yourself"),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody, description = "The last user")),
    security(("session" = []), ("token" = [])))]
pub async fn delete_user(
    principal: Principal,
    state: web::Data<AppState>,
    admin: web::Data<AdminState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    if principal.user.id == *id {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "cannot_delete_self",
            "You cannot delete your own account",
        ));
    }
    let actor = principal.actor();
    let id = id.into_inner();
    let outcome = write(&state.db, move |db| {
        let outcome = db.delete_user(&id)?;
        if let Ok(user) = &outcome {
            let before = serde_json::to_value(user.to_api()).ok();
            db.insert_audit(&AuditRow::new(
                actor,
                "user.delete",
                "user",
                &user.id,
                before,
                None,
            ))?;
        }
        Ok(outcome)
    })
    .await?;
    match outcome {
        Ok(_) => {
            admin.revoked();
            Ok(HttpResponse::NoContent().finish())
        }
        Err(DeleteUserError::NotFound) => Err(ApiError::not_found("No such user")),
        Err(DeleteUserError::LastUser) => Err(ApiError::conflict(
            "last_user",
            "The last user cannot be removed",
        )),
    }
}
