//! Secrets at rest: XChaCha20-Poly1305 under a 32-byte master key.
//!
//! A stored secret is `enc:v1:` + base64(nonce ‖ ciphertext ‖ tag). The associated data names
//! what the secret belongs to (for example `app:123456`), so a ciphertext copied onto another
//! row does not decrypt. The master key comes from the settings or from a key file that is
//! created with mode 0600 on the first start.

use std::fmt;
use std::path::Path;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;

const PREFIX: &str = "enc:v1:";
const NONCE_LEN: usize = 24;

/// The key that encrypts every secret in the database.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

/// A master-key or ciphertext problem, worded for the person starting the server.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the master key must be 32 bytes, base64-encoded (got {0} bytes)")]
    BadLength(usize),
    #[error("the master key is not valid base64")]
    NotBase64,
    #[error("cannot read the master key file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot create the master key file {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "no master key: the database already holds encrypted secrets, but the key file {0} does \
         not exist and no master_key is set. Restore the key file or set REVERB_PUSHER_MASTER_KEY."
    )]
    Missing(String),
    #[error(
        "the master key does not match this database (wrong key file or REVERB_PUSHER_MASTER_KEY)"
    )]
    Mismatch,
    #[error("a stored secret could not be decrypted ({0})")]
    Corrupt(&'static str),
}

impl MasterKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        Self(key)
    }

    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        let bytes = B64.decode(text.trim()).map_err(|_| KeyError::NotBase64)?;
        let key: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| KeyError::BadLength(bytes.len()))?;
        Ok(Self(key))
    }

    pub fn to_base64(&self) -> String {
        B64.encode(self.0)
    }

    /// Reads the key file, if it exists.
    pub fn read_file(path: &Path) -> Result<Option<Self>, KeyError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_base64(&text).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(KeyError::Read {
                path: path.display().to_string(),
                source,
            }),
        }
    }

    /// Writes the key file readable by its owner only. Never overwrites an existing file.
    pub fn write_new_file(&self, path: &Path) -> Result<(), KeyError> {
        use std::io::Write;
        let err = |source| KeyError::Write {
            path: path.display().to_string(),
            source,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(err)?;
        }
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(path).map_err(err)?;
        file.write_all(format!("{}\n", self.to_base64()).as_bytes())
            .map_err(err)?;
        file.sync_all().map_err(err)
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new((&self.0).into())
    }

    /// Encrypts `plaintext`, bound to `context` (e.g. `app:123`).
    pub fn encrypt(&self, plaintext: &str, context: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = self
            .cipher()
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: context.as_bytes(),
                },
            )
            .expect("XChaCha20-Poly1305 encryption cannot fail for in-memory buffers");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        format!("{PREFIX}{}", B64.encode(out))
    }

    /// Decrypts a value made by [`encrypt`](Self::encrypt) with the same context.
    pub fn decrypt(&self, stored: &str, context: &str) -> Result<String, KeyError> {
        let body = stored
            .strip_prefix(PREFIX)
            .ok_or(KeyError::Corrupt("not an encrypted value"))?;
        let bytes = B64
            .decode(body)
            .map_err(|_| KeyError::Corrupt("not base64"))?;
        if bytes.len() < NONCE_LEN {
            return Err(KeyError::Corrupt("too short"));
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let plain = self
            .cipher()
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| KeyError::Mismatch)?;
        String::from_utf8(plain).map_err(|_| KeyError::Corrupt("not UTF-8"))
    }
}

/// Whether a stored value is encrypted (older databases kept app secrets in plain text).
pub fn is_encrypted(stored: &str) -> bool {
    stored.starts_with(PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_context_binding() {
        let key = MasterKey::generate();
        let sealed = key.encrypt("s3cret", "app:1");
        assert!(is_encrypted(&sealed));
        assert!(!sealed.contains("s3cret"));
        assert_eq!(key.decrypt(&sealed, "app:1").unwrap(), "s3cret");
        assert!(matches!(
            key.decrypt(&sealed, "app:2"),
            Err(KeyError::Mismatch)
        ));
        assert!(matches!(
            MasterKey::generate().decrypt(&sealed, "app:1"),
            Err(KeyError::Mismatch)
        ));
        assert_ne!(
            key.encrypt("s3cret", "app:1"),
            sealed,
            "fresh nonce every time"
        );
    }

    #[test]
    fn base64_form() {
        let key = MasterKey::generate();
        let again = MasterKey::from_base64(&key.to_base64()).unwrap();
        assert_eq!(again.0, key.0);
        assert!(matches!(
            MasterKey::from_base64("AAAA"),
            Err(KeyError::BadLength(3))
        ));
        assert!(matches!(
            MasterKey::from_base64("%%%"),
            Err(KeyError::NotBase64)
        ));
    }

    #[test]
    fn key_file_is_private_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/master.key");
        let key = MasterKey::generate();
        key.write_new_file(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(MasterKey::generate().write_new_file(&path).is_err());
        assert_eq!(MasterKey::read_file(&path).unwrap().unwrap().0, key.0);
        assert!(MasterKey::read_file(&dir.path().join("none"))
            .unwrap()
            .is_none());
    }
}
