//! The admin API client: JSON over same-origin `fetch` (the session cookie rides along), the
//! CSRF header on writes, and errors turned into sentences a person can act on.
//!
//! It also owns the signed-in session: a 401 from any call clears it, and the shell then
//! sends the user to the login page.

use std::cell::RefCell;

use gloo_net::http::{Request, RequestBuilder, Response};
use leptos::prelude::*;
use serde::de::DeserializeOwned;
use serde::Serialize;
use shared::admin::{ErrorBody, SessionInfo};

pub const BASE: &str = "/admin/api";

/// A failed call, ready to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status, or 0 when the server could not be reached.
    pub status: u16,
    pub kind: String,
    pub message: String,
    /// The form field at fault, for validation errors.
    pub field: Option<String>,
}

impl ApiError {
    fn unreachable() -> Self {
        Self {
            status: 0,
            kind: "network".into(),
            message: "The server did not answer. Check that it is running, then try again.".into(),
            field: None,
        }
    }

    fn unreadable(status: u16) -> Self {
        Self {
            status,
            kind: "bad_response".into(),
            message: format!("The server answered with something unexpected (HTTP {status})."),
            field: None,
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

thread_local! {
    static CSRF: RefCell<Option<String>> = const { RefCell::new(None) };
    static SESSION: RefCell<Option<RwSignal<Option<SessionInfo>>>> = const { RefCell::new(None) };
}

/// Connects the client to the app's session signal.
pub fn install(session: RwSignal<Option<SessionInfo>>) {
    SESSION.with(|s| *s.borrow_mut() = Some(session));
}

/// Records the signed-in session (or its end) for later calls and for the UI.
pub fn set_session(info: Option<SessionInfo>) {
    CSRF.with(|c| *c.borrow_mut() = info.as_ref().and_then(|i| i.csrf_token.clone()));
    if let Some(signal) = SESSION.with(|s| *s.borrow()) {
        signal.set(info);
    }
}

fn url(path: &str) -> String {
    format!("{BASE}{path}")
}

fn with_csrf(builder: RequestBuilder) -> RequestBuilder {
    match CSRF.with(|c| c.borrow().clone()) {
        Some(token) => builder.header("X-CSRF-Token", &token),
        None => builder,
    }
}

async fn finish<T: DeserializeOwned>(
    response: Result<Response, gloo_net::Error>,
) -> Result<T, ApiError> {
    let response = response.map_err(|_| ApiError::unreachable())?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    if (200..300).contains(&status) {
        let text = if text.is_empty() { "null" } else { &text };
        return serde_json::from_str(text).map_err(|_| ApiError::unreadable(status));
    }
    if status == 401 {
        // The session ended (expired, or logged out elsewhere): back to the login page.
        set_session(None);
    }
    match serde_json::from_str::<ErrorBody>(&text) {
        Ok(body) => Err(ApiError {
            status,
            kind: body.error,
            message: body.message,
            field: body.field,
        }),
        Err(_) => Err(ApiError::unreadable(status)),
    }
}

pub async fn get<T: DeserializeOwned>(path: &str) -> Result<T, ApiError> {
    finish(Request::get(&url(path)).send().await).await
}

async fn send_json<B: Serialize, T: DeserializeOwned>(
    builder: RequestBuilder,
    body: &B,
) -> Result<T, ApiError> {
    let request = with_csrf(builder)
        .json(body)
        .map_err(|_| ApiError::unreadable(0))?;
    finish(request.send().await).await
}

pub async fn post<B: Serialize, T: DeserializeOwned>(path: &str, body: &B) -> Result<T, ApiError> {
    send_json(Request::post(&url(path)), body).await
}

pub async fn patch<B: Serialize, T: DeserializeOwned>(path: &str, body: &B) -> Result<T, ApiError> {
    send_json(Request::patch(&url(path)), body).await
}

pub async fn delete(path: &str) -> Result<(), ApiError> {
    finish(with_csrf(Request::delete(&url(path))).send().await).await
}
