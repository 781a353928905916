//! The rules for an app's credentials (id, key and secret) when a person chooses them instead of
//! letting the server generate them: kept apps from Pusher, soketi, sockudo, Reverb or
//! laravel-websockets keep their clients working only if their credentials are accepted as they
//! are. One pure function per credential, used by the server for every writer (admin API, CLI,
//! import) and by the panel to check a form before sending it.
//!
//! What is accepted, and why:
//! - **id** and **key**: 1 to [`MAX_ID`] / [`MAX_KEY`] characters of `A-Z a-z 0-9 _ . -`. Pusher
//!   issues numeric ids and 20 hex-digit keys; soketi and sockudo accept any string and their
//!   examples use `app-id` / `app-key`; Reverb generates lowercase alphanumerics. Both travel
//!   in URL paths (`/app/{key}`, `/apps/{id}/events`) and the key also in `key:signature`
//!   auth strings, so `/`, `:`, `?`, `%` and spaces are refused. The lengths are those of the
//!   MySQL columns (`id VARCHAR(32)`, `app_key VARCHAR(64)`).
//! - **secret**: [`MIN_SECRET`] to [`MAX_SECRET`] printable ASCII characters without spaces.
//!   It is an HMAC key that SDKs read from environment files, where spaces and non-ASCII
//!   characters get mangled; eight is the shortest that common development values
//!   (`app-secret`) pass while a typo like `x` does not. The upper bound keeps the encrypted form
//!   within the 255-character column.

use std::fmt;

/// Longest app id (the `apps.id` column on MySQL).
pub const MAX_ID: usize = 32;
/// Longest app key (the `apps.app_key` column on MySQL).
pub const MAX_KEY: usize = 64;
/// Shortest app secret.
pub const MIN_SECRET: usize = 8;
/// Longest app secret (its encrypted, base64 form must fit 255 characters).
pub const MAX_SECRET: usize = 128;

/// A credential that is not acceptable: the field (`id`, `key` or `secret`) and a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialError {
    pub field: &'static str,
    pub message: String,
}

impl fmt::Display for CredentialError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CredentialError {}

fn token(field: &'static str, value: &str, max: usize) -> Result<(), CredentialError> {
    let fail = |message: String| Err(CredentialError { field, message });
    if value.is_empty() {
        return fail(format!("{field} must not be empty"));
    }
    if value.len() > max {
        return fail(format!("{field} must be at most {max} characters"));
    }
    if let Some(bad) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return fail(format!(
            "{field} may contain only letters, digits, '_', '.' and '-' (found {bad:?})"
        ));
    }
    Ok(())
}

/// An app id chosen by a person: see the module documentation.
pub fn check_id(id: &str) -> Result<(), CredentialError> {
    token("id", id, MAX_ID)
}

/// An app key chosen by a person: see the module documentation.
pub fn check_key(key: &str) -> Result<(), CredentialError> {
    token("key", key, MAX_KEY)
}

/// An app secret chosen by a person: see the module documentation. The message never repeats
/// the secret.
pub fn check_secret(secret: &str) -> Result<(), CredentialError> {
    let fail = |message: String| {
        Err(CredentialError {
            field: "secret",
            message,
        })
    };
    let length = secret.chars().count();
    if !(MIN_SECRET..=MAX_SECRET).contains(&length) {
        return fail(format!(
            "secret must be between {MIN_SECRET} and {MAX_SECRET} characters"
        ));
    }
    if !secret.chars().all(|c| c.is_ascii_graphic()) {
        return fail("secret may contain only printable ASCII characters, no spaces".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_keys_of_the_servers_people_leave_are_accepted() {
        for id in ["1234567", "app-id", "my_app.v2", &"9".repeat(MAX_ID)] {
            assert_eq!(check_id(id), Ok(()), "{id}");
        }
        for key in ["app-key", "3f6b1e2a9c0d4e5f6a7b", &"k".repeat(MAX_KEY)] {
            assert_eq!(check_key(key), Ok(()), "{key}");
        }
    }

    #[test]
    fn ids_and_keys_that_break_urls_or_auth_strings_are_refused() {
        for bad in ["", "a/b", "a:b", "a b", "a?b", "a%20", "é", "a\n"] {
            let err = check_key(bad).unwrap_err();
            assert_eq!(err.field, "key", "{bad:?}");
        }
        assert_eq!(check_id("").unwrap_err().message, "id must not be empty");
        assert_eq!(
            check_id(&"1".repeat(MAX_ID + 1)).unwrap_err().message,
            "id must be at most 32 characters"
        );
        assert_eq!(
            check_key("a:b").unwrap_err().message,
            "key may contain only letters, digits, '_', '.' and '-' (found ':')"
        );
    }

    #[test]
    fn secrets_are_printable_ascii_of_a_sensible_length() {
        assert_eq!(check_secret("app-secret"), Ok(()));
        assert_eq!(check_secret("!#$%&'()*+,-./:;<=>?@[]^_`{|}~"), Ok(()));
        assert_eq!(check_secret(&"s".repeat(MAX_SECRET)), Ok(()));
        for bad in [
            "short",
            &"s".repeat(MAX_SECRET + 1),
            "with space",
            "tab\tsecret",
            "sécret-ok",
        ] {
            let err = check_secret(bad).unwrap_err();
            assert_eq!(err.field, "secret");
            assert!(!err.message.contains(bad), "the message repeats the secret");
        }
    }
}
