//! Who is calling the admin API: a session cookie (with a CSRF token for writes) or an API
//! token in `Authorization: Bearer`. Also password hashing, the login throttle and the one-time
//! setup token.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::{Method, StatusCode};
use actix_web::{web, FromRequest, HttpRequest};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::db::admin::UserRow;
use crate::error::ApiError;
use crate::state::AppState;

pub const SESSION_COOKIE: &str = "rp_admin_session";
pub const CSRF_HEADER: &str = "x-csrf-token";
/// How long a login lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// Prefix that makes API tokens recognisable (for example by secret scanners).
pub const TOKEN_PREFIX: &str = "rpt_";

/// Failed logins allowed per client address and email within the window.
const LOGIN_ATTEMPTS: usize = 5;
const LOGIN_WINDOW: Duration = Duration::from_secs(15 * 60);

/// A random URL-safe token of 32 bytes.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// SHA-256 hex of a high-entropy token (session ids, API tokens).
pub fn token_digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// argon2id with the crate's recommended parameters.
pub fn hash_password(password: &str) -> String {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).expect("16 bytes is a valid salt");
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 hashing of a bounded password")
        .to_string()
}

pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// A hash to verify against when the email is unknown, so that both paths cost the same.
pub fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password("not a real password"))
}

/// How the caller authenticated.
#[derive(Debug, Clone)]
pub enum Via {
    Session {
        token_hash: String,
        csrf_token: String,
    },
    Token {
        name: String,
    },
}

/// An authenticated admin.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user: UserRow,
    pub via: Via,
}

impl Principal {
    /// How the audit log names the caller.
    pub fn actor(&self) -> String {
        match &self.via {
            Via::Session { .. } => format!("user:{}", self.user.email),
            Via::Token { name } => format!("token:{name} (user:{})", self.user.email),
        }
    }
}

fn unauthenticated(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", message)
}

impl FromRequest for Principal {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let bearer = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|v| v.trim().to_owned());
        let cookie = req.cookie(SESSION_COOKIE).map(|c| c.value().to_owned());
        let csrf = req
            .headers()
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let writes = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
        Box::pin(async move {
            let state = state.ok_or_else(ApiError::internal)?;
            if let Some(token) = bearer {
                let digest = token_digest(&token);
                let found = crate::blocking(&state.db, move |db| db.use_token(&digest)).await?;
                let (token, user) =
                    found.ok_or_else(|| unauthenticated("The API token is invalid or revoked"))?;
                return Ok(Principal {
                    user,
                    via: Via::Token { name: token.name },
                });
            }
            let cookie = cookie.ok_or_else(|| unauthenticated("Log in or send an API token"))?;
            let digest = token_digest(&cookie);
            let found = crate::blocking(&state.db, move |db| db.find_session(&digest)).await?;
            let (session, user) =
                found.ok_or_else(|| unauthenticated("The session has expired; log in again"))?;
            // Cookies ride along with cross-site requests; the CSRF token does not.
            if writes && csrf.map(|c| token_digest(&c)) != Some(token_digest(&session.csrf_token)) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "csrf_token_invalid",
                    "Missing or wrong X-CSRF-Token header",
                ));
            }
            Ok(Principal {
                user,
                via: Via::Session {
                    token_hash: session.token_hash,
                    csrf_token: session.csrf_token,
                },
            })
        })
    }
}

/// The session cookie, `Secure` when the server speaks TLS.
pub fn session_cookie(value: &str, secure: bool, max_age: Duration) -> Cookie<'static> {
    Cookie::build(SESSION_COOKIE, value.to_owned())
        .path("/admin")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .max_age(actix_web::cookie::time::Duration::seconds(
            i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX),
        ))
        .finish()
}

/// Counts failed logins per client address and email.
#[derive(Default)]
pub struct LoginThrottle {
    failures: Mutex<HashMap<(String, String), Vec<Instant>>>,
}

impl LoginThrottle {
    /// `Err(seconds to wait)` when this client has failed too often for this email.
    pub fn check(&self, ip: &str, email: &str) -> Result<(), u64> {
        let mut failures = self.failures.lock().expect("throttle lock");
        let key = (ip.to_owned(), email.to_owned());
        let Some(times) = failures.get_mut(&key) else {
            return Ok(());
        };
        times.retain(|t| t.elapsed() < LOGIN_WINDOW);
        if times.len() < LOGIN_ATTEMPTS {
            return Ok(());
        }
        let oldest = times.first().copied().unwrap_or_else(Instant::now);
        Err(LOGIN_WINDOW
            .saturating_sub(oldest.elapsed())
            .as_secs()
            .max(1))
    }

    pub fn failed(&self, ip: &str, email: &str) {
        let mut failures = self.failures.lock().expect("throttle lock");
        // Bounded memory under a spray of addresses: forget stale entries first.
        if failures.len() > 10_000 {
            failures.retain(|_, times| times.iter().any(|t| t.elapsed() < LOGIN_WINDOW));
        }
        failures
            .entry((ip.to_owned(), email.to_owned()))
            .or_default()
            .push(Instant::now());
    }

    pub fn succeeded(&self, ip: &str, email: &str) {
        self.failures
            .lock()
            .expect("throttle lock")
            .remove(&(ip.to_owned(), email.to_owned()));
    }
}

/// The one-time token that lets the first visitor create the first account.
#[derive(Default)]
pub struct SetupToken(Mutex<Option<String>>);

impl SetupToken {
    pub fn issue(&self) -> String {
        let token = random_token();
        *self.0.lock().expect("setup lock") = Some(token.clone());
        token
    }

    pub fn current(&self) -> Option<String> {
        self.0.lock().expect("setup lock").clone()
    }

    /// Consumes the token if it matches.
    pub fn redeem(&self, offered: &str) -> bool {
        let mut slot = self.0.lock().expect("setup lock");
        let matches = slot
            .as_deref()
            .is_some_and(|t| token_digest(t) == token_digest(offered));
        if matches {
            *slot = None;
        }
        matches
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_and_verify() {
        let hash = hash_password("correct horse");
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password(&hash, "correct horse"));
        assert!(!verify_password(&hash, "wrong"));
        assert!(!verify_password("garbage", "x"));
    }

    #[test]
    fn throttle_blocks_after_five_failures_per_address_and_email() {
        let t = LoginThrottle::default();
        for _ in 0..5 {
            assert!(t.check("1.1.1.1", "a@x").is_ok());
            t.failed("1.1.1.1", "a@x");
        }
        assert!(t.check("1.1.1.1", "a@x").is_err());
        assert!(t.check("2.2.2.2", "a@x").is_ok());
        assert!(t.check("1.1.1.1", "b@x").is_ok());
        t.succeeded("1.1.1.1", "a@x");
        assert!(t.check("1.1.1.1", "a@x").is_ok());
    }

    #[test]
    fn setup_token_is_single_use() {
        let s = SetupToken::default();
        assert!(!s.redeem("x"));
        let token = s.issue();
        assert!(!s.redeem("wrong"));
        assert!(s.redeem(&token));
        assert!(!s.redeem(&token));
    }
}
