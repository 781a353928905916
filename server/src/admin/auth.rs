//! Who is calling the admin API: a session cookie (with a CSRF token for writes) or an API
//! token in `Authorization: Bearer`. Also password hashing and the one-time setup token (the
//! limits on password work are in [`super::throttle`]).

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
/// How often expired sessions are deleted (also once at start).
pub const SESSION_PURGE_EVERY: Duration = Duration::from_secs(3600);
/// Prefix that makes API tokens recognisable (for example by secret scanners).
pub const TOKEN_PREFIX: &str = "rpt_";

/// How long a setup token works; after that the next visit to the setup page issues another.
pub const SETUP_TOKEN_TTL: Duration = Duration::from_secs(3600);

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
        id: String,
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
            Via::Token { name, .. } => format!("token:{name} (user:{})", self.user.email),
        }
    }

    /// Whether the credential this principal came with still works (not logged out, revoked,
    /// expired, or its user deleted). Long-lived responses ask again from time to time.
    pub fn still_valid(&self, db: &crate::db::Db) -> Result<bool, crate::db::DbError> {
        match &self.via {
            Via::Session { token_hash, .. } => Ok(db.find_session(token_hash)?.is_some()),
            Via::Token { id, .. } => db.token_is_live(id),
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
                let found = crate::db::blocking(&state.db, move |db| db.use_token(&digest)).await?;
                let (token, user) =
                    found.ok_or_else(|| unauthenticated("The API token is invalid or revoked"))?;
                return Ok(Principal {
                    user,
                    via: Via::Token {
                        id: token.id,
                        name: token.name,
                    },
                });
            }
            let cookie = cookie.ok_or_else(|| unauthenticated("Log in or send an API token"))?;
            let digest = token_digest(&cookie);
            let found = crate::db::blocking(&state.db, move |db| db.find_session(&digest)).await?;
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

/// The one-time token that lets the first visitor create the first account. It works for
/// [`SETUP_TOKEN_TTL`] after it was issued.
#[derive(Default)]
pub struct SetupToken(Mutex<Option<(String, Instant)>>);

/// Why a setup token was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum SetupRefusal {
    /// No token was issued, it was used, or the offered one differs.
    Wrong,
    /// The token was right but too old; a new one has been issued.
    Expired,
}

impl SetupToken {
    pub fn issue(&self) -> String {
        self.issue_at(Instant::now())
    }

    fn issue_at(&self, now: Instant) -> String {
        let token = random_token();
        *self.0.lock().expect("setup lock") = Some((token.clone(), now));
        token
    }

    /// The token, while it is unused and unexpired.
    pub fn current(&self) -> Option<String> {
        self.current_at(Instant::now())
    }

    fn current_at(&self, now: Instant) -> Option<String> {
        self.0
            .lock()
            .expect("setup lock")
            .as_ref()
            .filter(|(_, issued)| now.duration_since(*issued) < SETUP_TOKEN_TTL)
            .map(|(token, _)| token.clone())
    }

    /// A new token if the current one has expired (`None` if it is still good, or if none was
    /// ever issued: the server issues one only while no account exists).
    pub fn renew_if_expired(&self) -> Option<String> {
        self.renew_if_expired_at(Instant::now())
    }

    fn renew_if_expired_at(&self, now: Instant) -> Option<String> {
        let expired = self
            .0
            .lock()
            .expect("setup lock")
            .as_ref()
            .is_some_and(|(_, issued)| now.duration_since(*issued) >= SETUP_TOKEN_TTL);
        expired.then(|| self.issue_at(now))
    }

    /// Puts a redeemed token back (its setup failed): it lasts another full hour.
    pub fn restore(&self, token: &str) {
        let mut slot = self.0.lock().expect("setup lock");
        if slot.is_none() {
            *slot = Some((token.to_owned(), Instant::now()));
        }
    }

    /// Consumes the token if it matches and has not expired.
    pub fn redeem(&self, offered: &str) -> Result<(), SetupRefusal> {
        self.redeem_at(offered, Instant::now())
    }

    fn redeem_at(&self, offered: &str, now: Instant) -> Result<(), SetupRefusal> {
        let mut slot = self.0.lock().expect("setup lock");
        let Some((token, issued)) = slot.as_ref() else {
            return Err(SetupRefusal::Wrong);
        };
        if token_digest(token) != token_digest(offered) {
            return Err(SetupRefusal::Wrong);
        }
        if now.duration_since(*issued) >= SETUP_TOKEN_TTL {
            return Err(SetupRefusal::Expired);
        }
        *slot = None;
        Ok(())
    }
}

/// Shows a setup token, never in the log: logs are shipped and kept, and this token is a
/// credential. On a terminal it is printed there. Otherwise stderr is a log stream too (docker,
/// journald), so the token goes to `file` (mode 0600, beside the master key) and only the
/// file's path is printed; if the file cannot be written, the token is printed after all, so
/// that the server stays usable.
#[allow(clippy::print_stderr)]
pub fn show_setup_token(token: &str, file: &std::path::Path) {
    use std::io::IsTerminal;
    let help = "Open the admin panel (/admin/) and create the first account with it, or run \
                `reverb-pusher user create`.";
    if !std::io::stderr().is_terminal() {
        match write_private_file(file, token) {
            Ok(()) => {
                eprintln!(
                    "\n  No admin account yet. The admin setup token (valid for 1 hour) is in \
                     {}\n  {help}\n",
                    file.display()
                );
                return;
            }
            Err(e) => {
                tracing::warn!(file = %file.display(), error = %e, "cannot write the setup token file");
            }
        }
    }
    eprintln!(
        "\n  No admin account yet. Admin setup token (valid for 1 hour): {token}\n  {help}\n"
    );
}

/// Deletes the setup token file once the token is spent (a missing file is fine).
pub fn forget_setup_token(file: &std::path::Path) {
    let _ = std::fs::remove_file(file);
}

/// Writes `contents` to `path`, readable by the owner only.
fn write_private_file(path: &std::path::Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    writeln!(file, "{contents}")
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
    fn setup_token_is_single_use() {
        let s = SetupToken::default();
        assert_eq!(s.redeem("x"), Err(SetupRefusal::Wrong));
        let token = s.issue();
        assert_eq!(s.redeem("wrong"), Err(SetupRefusal::Wrong));
        assert_eq!(s.redeem(&token), Ok(()));
        assert_eq!(s.redeem(&token), Err(SetupRefusal::Wrong));
        assert_eq!(s.renew_if_expired(), None, "no token, nothing to renew");
    }

    #[test]
    fn setup_token_expires_after_an_hour_and_is_renewed_on_demand() {
        let s = SetupToken::default();
        let start = Instant::now();
        let token = s.issue_at(start);
        let later = start + SETUP_TOKEN_TTL;
        assert_eq!(s.current_at(start).as_deref(), Some(token.as_str()));
        assert_eq!(s.current_at(later), None);
        assert_eq!(s.redeem_at(&token, later), Err(SetupRefusal::Expired));
        assert_eq!(s.renew_if_expired_at(start), None, "still good");
        let renewed = s.renew_if_expired_at(later).expect("a new token");
        assert_ne!(renewed, token);
        assert_eq!(s.redeem_at(&token, later), Err(SetupRefusal::Wrong));
        assert_eq!(s.redeem_at(&renewed, later), Ok(()));
    }
}
