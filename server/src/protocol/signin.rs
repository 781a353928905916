//! `pusher:signin`: what a signed `user_data` proves about a connection.

use serde_json::Value;
use shared::frames::SigninData;

use super::signatures;
use crate::apps::AppConfig;

/// Most user ids a watchlist may hold; more are dropped with a 4302 error.
pub const MAX_WATCHLIST: usize = 100;

/// A verified sign-in.
#[derive(Debug, Clone, PartialEq)]
pub struct Signin {
    pub user_id: String,
    pub user_info: Value,
    /// The users whose online state this connection follows, at most [`MAX_WATCHLIST`].
    pub watchlist: Vec<String>,
    /// The app sent more than [`MAX_WATCHLIST`] ids; the rest were dropped.
    pub watchlist_truncated: bool,
}

/// What to do with a `pusher:signin`.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A first sign-in on this connection.
    SignedIn(Signin),
    /// The same user again: confirmed, nothing changes.
    Again,
}

/// Why a sign-in was refused (each is a `pusher:error` with 4009).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigninError {
    BadSignature,
    MissingUserId,
    OtherUser,
}

impl SigninError {
    pub fn message(self) -> &'static str {
        match self {
            Self::BadSignature => "Invalid signature for pusher:signin",
            Self::MissingUserId => "The returned user data must contain the \"id\" field.",
            Self::OtherUser => "The connection is already signed in as another user",
        }
    }
}

/// Verifies a sign-in for `socket_id`, which is signed in as `current` (if at all).
pub fn verify(
    socket_id: &str,
    data: &SigninData,
    config: &AppConfig,
    now_unix: i64,
    current: Option<&str>,
) -> Result<Outcome, SigninError> {
    let signed = signatures::signin_string(socket_id, &data.user_data);
    let secrets = config.signing_secrets(now_unix);
    signatures::verify_token(&config.key, &secrets, &signed, &data.auth)
        .map_err(|_| SigninError::BadSignature)?;
    let user_data: Value = serde_json::from_str(&data.user_data).unwrap_or(Value::Null);
    let user_id = match user_data.get("id") {
        Some(Value::String(id)) if !id.is_empty() => id.clone(),
        _ => return Err(SigninError::MissingUserId),
    };
    match current {
        Some(current) if current == user_id => return Ok(Outcome::Again),
        Some(_) => return Err(SigninError::OtherUser),
        None => {}
    }
    let mut watchlist: Vec<String> = user_data
        .get("watchlist")
        .and_then(Value::as_array)
        .map(|ids| {
            ids.iter()
                .filter_map(|v| match v {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let watchlist_truncated = watchlist.len() > MAX_WATCHLIST;
    watchlist.truncate(MAX_WATCHLIST);
    let user_info = user_data
        .get("user_info")
        .cloned()
        .unwrap_or_else(|| Value::Object(serde_json::Map::new()));
    Ok(Outcome::SignedIn(Signin {
        user_id,
        user_info,
        watchlist,
        watchlist_truncated,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn signed(config: &AppConfig, user_data: &Value) -> SigninData {
        let user_data = user_data.to_string();
        let signature = signatures::sign(
            &config.secret,
            &signatures::signin_string("1.2", &user_data),
        );
        SigninData {
            auth: format!("{}:{signature}", config.key),
            user_data,
        }
    }

    #[test]
    fn a_signed_user_is_signed_in_with_info_and_watchlist() {
        let c = AppConfig::generate("t");
        let data = signed(
            &c,
            &json!({"id": "u1", "user_info": {"n": 1}, "watchlist": ["a", 2, null]}),
        );
        let Ok(Outcome::SignedIn(s)) = verify("1.2", &data, &c, 0, None) else {
            panic!()
        };
        assert_eq!(s.user_id, "u1");
        assert_eq!(s.user_info, json!({"n": 1}));
        assert_eq!(s.watchlist, ["a", "2"]);
        assert!(!s.watchlist_truncated);
        assert_eq!(verify("1.2", &data, &c, 0, Some("u1")), Ok(Outcome::Again));
        assert_eq!(
            verify("1.2", &data, &c, 0, Some("u2")),
            Err(SigninError::OtherUser)
        );
    }

    #[test]
    fn refusals() {
        let c = AppConfig::generate("t");
        let data = signed(&c, &json!({"id": "u1"}));
        assert_eq!(
            verify("9.9", &data, &c, 0, None),
            Err(SigninError::BadSignature)
        );
        let no_id = signed(&c, &json!({"name": "x"}));
        assert_eq!(
            verify("1.2", &no_id, &c, 0, None),
            Err(SigninError::MissingUserId)
        );
    }

    #[test]
    fn long_watchlists_are_cut_to_the_maximum() {
        let c = AppConfig::generate("t");
        let ids: Vec<String> = (0..150).map(|i| i.to_string()).collect();
        let data = signed(&c, &json!({"id": "u", "watchlist": ids}));
        let Ok(Outcome::SignedIn(s)) = verify("1.2", &data, &c, 0, None) else {
            panic!()
        };
        assert_eq!(s.watchlist.len(), MAX_WATCHLIST);
        assert!(s.watchlist_truncated);
    }
}
