//! Pusher signatures: channel and user authorisation tokens, and signed REST requests.
//!
//! Every comparison runs in constant time (through `Mac::verify_slice`), and the key half of a
//! `key:signature` token must name the app, as Pusher checks it.

use std::borrow::Cow;

use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// HMAC-SHA256 of `message` under `secret`, as lowercase hex.
pub fn sign(secret: &str, message: &str) -> String {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC accepts any key");
    mac.update(message.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// `N` bytes from `2 * N` hex digits of either case, or `None`.
///
/// By table, without a branch per digit: `hex::decode_to_slice` branches on each digit's
/// range, and random digits mispredict about half of those branches; it cost ~0.3 µs per
/// REST request (the signature and `body_md5`), a fortieth of the server's CPU for one.
fn decode_hex<const N: usize>(digits: &str) -> Option<[u8; N]> {
    const INVALID: u8 = 0x80;
    const VALUES: [u8; 256] = {
        let mut table = [INVALID; 256];
        let mut i = 0;
        while i < 10 {
            table[b'0' as usize + i] = i as u8;
            i += 1;
        }
        let mut i = 0;
        while i < 6 {
            table[b'a' as usize + i] = 10 + i as u8;
            table[b'A' as usize + i] = 10 + i as u8;
            i += 1;
        }
        table
    };
    let digits = digits.as_bytes();
    if digits.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    let mut invalid = 0;
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        let (high, low) = (VALUES[pair[0] as usize], VALUES[pair[1] as usize]);
        invalid |= high | low;
        *byte = (high << 4) | low;
    }
    (invalid & INVALID == 0).then_some(out)
}

/// Whether `signature` is the HMAC-SHA256 of `message` under `secret`, compared in constant time.
fn mac_matches(secret: &str, message: &str, signature: &[u8; 32]) -> bool {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC accepts any key");
    mac.update(message.as_bytes());
    mac.verify_slice(signature).is_ok()
}

/// Why a `key:signature` token was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum TokenError {
    /// Not of the form `key:hex`.
    Malformed,
    /// The key half names another app.
    WrongKey,
    /// The signature does not match.
    BadSignature,
}

/// Verifies a `key:hex` token over `message` against any of the app's current secrets.
pub fn verify_token(
    app_key: &str,
    secrets: &[&str],
    message: &str,
    token: &str,
) -> Result<(), TokenError> {
    let (key, signature) = token.split_once(':').ok_or(TokenError::Malformed)?;
    if key != app_key {
        return Err(TokenError::WrongKey);
    }
    let signature = decode_hex::<32>(signature).ok_or(TokenError::BadSignature)?;
    if secrets
        .iter()
        .any(|secret| mac_matches(secret, message, &signature))
    {
        Ok(())
    } else {
        Err(TokenError::BadSignature)
    }
}

/// The string a private or encrypted channel subscription signs.
pub fn channel_string(socket_id: &str, channel: &str) -> String {
    format!("{socket_id}:{channel}")
}

/// The string a presence subscription signs (the exact `channel_data` received).
pub fn presence_string(socket_id: &str, channel: &str, channel_data: &str) -> String {
    format!("{socket_id}:{channel}:{channel_data}")
}

/// The string `pusher:signin` signs.
pub fn signin_string(socket_id: &str, user_data: &str) -> String {
    format!("{socket_id}::user::{user_data}")
}

/// Why a signed REST request was refused (all are 401s).
#[derive(Debug, PartialEq, Eq)]
pub enum RequestAuthError {
    MissingParam(&'static str),
    UnknownKey,
    BadTimestamp,
    Expired { given: i64, now: i64 },
    BodyMd5Mismatch,
    BadSignature,
}

impl std::fmt::Display for RequestAuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::MissingParam(p) => write!(f, "Missing required query parameter {p}"),
            Self::UnknownKey => f.write_str("auth_key does not belong to this app"),
            Self::BadTimestamp => f.write_str("auth_timestamp is not a number"),
            Self::Expired { given, now } => write!(
                f,
                "Timestamp expired: Given timestamp ({given}) not within 600s of server time ({now})"
            ),
            Self::BodyMd5Mismatch => f.write_str("body_md5 does not match the request body"),
            Self::BadSignature => f.write_str("Invalid signature"),
        }
    }
}

/// Largest allowed distance between the request's `auth_timestamp` and the server clock.
pub const TIMESTAMP_WINDOW_SECS: i64 = 600;

/// Verifies a signed REST request as Pusher does.
///
/// `query` holds the URL-decoded query pairs; `path` is the request path without host or query.
/// Nothing is allocated that a well-formed request does not need: names already in lower case
/// are borrowed, and the string to sign is built once (this runs on every REST request).
pub fn verify_request<K: AsRef<str>, V: AsRef<str>>(
    method: &str,
    path: &str,
    query: &[(K, V)],
    body: &[u8],
    app_key: &str,
    secrets: &[&str],
    now_unix: i64,
) -> Result<(), RequestAuthError> {
    let find = |name: &'static str| {
        query
            .iter()
            .find(|(k, _)| k.as_ref().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_ref())
            .ok_or(RequestAuthError::MissingParam(name))
    };
    if find("auth_key")? != app_key {
        return Err(RequestAuthError::UnknownKey);
    }
    let timestamp: i64 = find("auth_timestamp")?
        .parse()
        .map_err(|_| RequestAuthError::BadTimestamp)?;
    // `abs_diff`: any i64 a client sends, even i64::MIN, is compared without overflow.
    if now_unix.abs_diff(timestamp) > TIMESTAMP_WINDOW_SECS.unsigned_abs() {
        return Err(RequestAuthError::Expired {
            given: timestamp,
            now: now_unix,
        });
    }
    let signature = find("auth_signature")?;
    if !body.is_empty() {
        let md5 = find("body_md5")?;
        if decode_hex::<16>(md5).is_none_or(|given| given != *Md5::digest(body)) {
            return Err(RequestAuthError::BodyMd5Mismatch);
        }
    }
    let mut params: Vec<(Cow<'_, str>, &str)> = query
        .iter()
        .filter(|(k, _)| !k.as_ref().eq_ignore_ascii_case("auth_signature"))
        .map(|(k, v)| (lower(k.as_ref()), v.as_ref()))
        .collect();
    params.sort_unstable();
    let mut to_sign = String::with_capacity(
        method.len()
            + path.len()
            + 2
            + params
                .iter()
                .map(|(k, v)| k.len() + v.len() + 2)
                .sum::<usize>(),
    );
    to_sign.extend(method.chars().map(|c| c.to_ascii_uppercase()));
    to_sign.push('\n');
    to_sign.push_str(path);
    to_sign.push('\n');
    for (i, (k, v)) in params.iter().enumerate() {
        if i > 0 {
            to_sign.push('&');
        }
        to_sign.push_str(k);
        to_sign.push('=');
        to_sign.push_str(v);
    }
    let signature = decode_hex::<32>(signature).ok_or(RequestAuthError::BadSignature)?;
    if secrets
        .iter()
        .any(|secret| mac_matches(secret, &to_sign, &signature))
    {
        Ok(())
    } else {
        Err(RequestAuthError::BadSignature)
    }
}

/// `s` in ASCII lower case, borrowed when it already is.
fn lower(s: &str) -> Cow<'_, str> {
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(s.to_ascii_lowercase())
    } else {
        Cow::Borrowed(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "278d425bdf160c739803";
    const SECRET: &str = "7ad3773142a6692b25b8";

    #[test]
    fn timestamps_at_the_extremes_of_i64_are_refused_without_overflow() {
        for given in [i64::MIN, i64::MIN + 1, i64::MAX, -1] {
            let query = vec![
                ("auth_key".to_owned(), KEY.to_owned()),
                ("auth_timestamp".to_owned(), given.to_string()),
                ("auth_signature".to_owned(), "x".to_owned()),
            ];
            for now in [0, 1_700_000_000, i64::MAX, i64::MIN] {
                let result = verify_request("GET", "/", &query, b"", KEY, &[SECRET], now);
                if now.abs_diff(given) <= 600 {
                    assert_eq!(result, Err(RequestAuthError::BadSignature));
                } else {
                    assert_eq!(result, Err(RequestAuthError::Expired { given, now }));
                }
            }
        }
    }

    #[test]
    fn documented_vectors() {
        assert_eq!(
            sign(SECRET, "1234.1234:private-foobar"),
            "58df8b0c36d6982b82c3ecf6b4662e34fe8c25bba48f5369f135bf843651c3a4"
        );
        assert_eq!(
            sign(SECRET, &signin_string("1234.1234", r#"{"id":"12345"}"#)),
            "4708d583dada6a56435fb8bc611c77c359a31eebde13337c16ab43aa6de336ba"
        );
        assert_eq!(
            sign(
                SECRET,
                &presence_string(
                    "1234.1234",
                    "presence-foobar",
                    r#"{"user_id":10,"user_info":{"name":"Mr. Channels"}}"#
                )
            ),
            "31935e7d86dba64c2a90aed31fdc61869f9b22ba9d8863bba239c03ca481bc80"
        );
    }

    #[test]
    fn token_checks_key_and_signature() {
        let msg = channel_string("1234.1234", "private-foobar");
        let good = format!("{KEY}:{}", sign(SECRET, &msg));
        assert_eq!(verify_token(KEY, &[SECRET], &msg, &good), Ok(()));
        let wrong_key = format!("other:{}", sign(SECRET, &msg));
        assert_eq!(
            verify_token(KEY, &[SECRET], &msg, &wrong_key),
            Err(TokenError::WrongKey)
        );
        assert_eq!(
            verify_token(KEY, &[SECRET], &msg, &format!("{KEY}:00")),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            verify_token(KEY, &[SECRET], &msg, "nocolon"),
            Err(TokenError::Malformed)
        );
        assert_eq!(verify_token(KEY, &["old", SECRET], &msg, &good), Ok(()));
    }

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn documented_post_request_vector() {
        let body = br#"{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}"#;
        assert_eq!(
            hex::encode(Md5::digest(body)),
            "ec365a775a4cd0599faeb73354201b6f"
        );
        let query = q(&[
            ("auth_key", KEY),
            ("auth_timestamp", "1353088179"),
            ("auth_version", "1.0"),
            ("body_md5", "ec365a775a4cd0599faeb73354201b6f"),
            (
                "auth_signature",
                "da454824c97ba181a32ccc17a72625ba02771f50b50e1e7430e47a1f3f457e6c",
            ),
        ]);
        let now = 1_353_088_179;
        assert_eq!(
            verify_request("POST", "/apps/3/events", &query, body, KEY, &[SECRET], now),
            Ok(())
        );
        assert_eq!(
            verify_request("POST", "/apps/3/events", &query, b"{}", KEY, &[SECRET], now),
            Err(RequestAuthError::BodyMd5Mismatch)
        );
        assert!(matches!(
            verify_request(
                "POST",
                "/apps/3/events",
                &query,
                body,
                KEY,
                &[SECRET],
                now + 601
            ),
            Err(RequestAuthError::Expired { .. })
        ));
    }

    #[test]
    fn documented_get_request_vector() {
        let query = q(&[
            ("info", "user_count"),
            ("auth_key", KEY),
            ("auth_timestamp", "1353088179"),
            ("filter_by_prefix", "presence-"),
            ("auth_version", "1.0"),
            (
                "auth_signature",
                "16819168891cb5dfd72b5c7a5d3d602605b26c6ba1930033b5e2eeeb65010291",
            ),
        ]);
        assert_eq!(
            verify_request(
                "GET",
                "/apps/3/channels",
                &query,
                b"",
                KEY,
                &[SECRET],
                1_353_088_179
            ),
            Ok(())
        );
        assert_eq!(
            verify_request(
                "GET",
                "/apps/4/channels",
                &query,
                b"",
                KEY,
                &[SECRET],
                1_353_088_179
            ),
            Err(RequestAuthError::BadSignature)
        );
    }

    /// Names are compared and signed in lower case, as Pusher does, values are signed as
    /// sent, and hex digits may be in either case; a signature that is not 64 hex digits is
    /// refused, never a panic.
    #[test]
    fn names_and_hex_digits_in_either_case() {
        let body = br#"{"name":"foo","channels":["project-3"],"data":"{\"some\":\"data\"}"}"#;
        let md5 = "EC365A775A4CD0599FAEB73354201B6F";
        let signed = |signature: &str| {
            q(&[
                ("Auth_Key", KEY),
                ("AUTH_TIMESTAMP", "1353088179"),
                ("auth_version", "1.0"),
                ("Body_MD5", md5),
                ("Auth_Signature", signature),
            ])
        };
        let verify = |query: &[(String, String)]| {
            verify_request(
                "POST",
                "/apps/3/events",
                query,
                body,
                KEY,
                &[SECRET],
                1_353_088_179,
            )
        };
        let good = sign(
            SECRET,
            &format!(
                "POST\n/apps/3/events\nauth_key={KEY}&auth_timestamp=1353088179&auth_version=1.0&body_md5={md5}"
            ),
        )
        .to_uppercase();
        assert_eq!(verify(&signed(&good)), Ok(()));
        for bad in [&good[..62], "zz", "", &format!("{good}00")] {
            assert_eq!(
                verify(&signed(bad)),
                Err(RequestAuthError::BadSignature),
                "{bad}"
            );
        }
    }

    #[test]
    fn hex_digits_of_either_case_and_nothing_else() {
        assert_eq!(decode_hex::<2>("0aF9"), Some([0x0a, 0xf9]));
        assert_eq!(decode_hex::<2>("0AF9"), Some([0x0a, 0xf9]));
        let every = hex::encode((0..=255u8).collect::<Vec<u8>>());
        let bytes: [u8; 256] = std::array::from_fn(|i| i as u8);
        assert_eq!(decode_hex::<256>(&every), Some(bytes));
        assert_eq!(decode_hex::<256>(&every.to_uppercase()), Some(bytes));
        for bad in [
            "0g00", "00 0", "/000", ":000", "@000", "G000", "`000", "000é",
        ] {
            assert_eq!(decode_hex::<2>(bad), None, "{bad}");
        }
        assert_eq!(decode_hex::<2>("000"), None);
        assert_eq!(decode_hex::<2>("00000"), None);
    }
}
