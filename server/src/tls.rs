//! Native TLS (rustls, ring provider) for WebSockets and HTTP on one port, with certificates
//! reloaded while the server runs.
//!
//! The server config resolves its certificate through [`ReloadingCert`], which holds the
//! current key pair in an `ArcSwap`: a reload (files changed on disk, or SIGHUP) swaps it for
//! new handshakes, and connections already open keep going untouched.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::crypto::ring::default_provider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// A certificate problem, worded for the operator.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the TLS certificate chain {path}: {reason}")]
    Certificates { path: String, reason: String },
    #[error("cannot read the TLS private key {path}: {reason}")]
    Key { path: String, reason: String },
    #[error("the TLS certificate and key do not work together: {0}")]
    Mismatch(String),
}

/// Where the PEM files are.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TlsFiles {
    /// Loads and checks the pair.
    pub fn load(&self) -> Result<CertifiedKey, TlsError> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&self.cert)
            .and_then(Iterator::collect)
            .map_err(|e| TlsError::Certificates {
                path: self.cert.display().to_string(),
                reason: e.to_string(),
            })?;
        if chain.is_empty() {
            return Err(TlsError::Certificates {
                path: self.cert.display().to_string(),
                reason: "no certificate in the file".into(),
            });
        }
        let key = PrivateKeyDer::from_pem_file(&self.key).map_err(|e| TlsError::Key {
            path: self.key.display().to_string(),
            reason: e.to_string(),
        })?;
        let provider = default_provider();
        let signing_key =
            provider
                .key_provider
                .load_private_key(key)
                .map_err(|e| TlsError::Key {
                    path: self.key.display().to_string(),
                    reason: e.to_string(),
                })?;
        let certified = CertifiedKey::new(chain, signing_key);
        certified
            .keys_match()
            .map_err(|e| TlsError::Mismatch(e.to_string()))?;
        Ok(certified)
    }

    /// When the files last changed (the later of the two).
    fn modified(&self) -> Option<SystemTime> {
        let time = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        time(&self.cert).into_iter().chain(time(&self.key)).max()
    }
}

/// The certificate handed to each new TLS handshake.
#[derive(Debug)]
pub struct ReloadingCert {
    files: TlsFiles,
    current: ArcSwap<CertifiedKey>,
    loaded_at: std::sync::Mutex<Option<SystemTime>>,
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

impl ReloadingCert {
    pub fn new(files: TlsFiles) -> Result<Arc<Self>, TlsError> {
        let certified = files.load()?;
        let loaded_at = files.modified();
        Ok(Arc::new(Self {
            files,
            current: ArcSwap::from_pointee(certified),
            loaded_at: std::sync::Mutex::new(loaded_at),
        }))
    }

    /// Loads the files again; on error the current certificate stays in use.
    pub fn reload(&self) -> Result<(), TlsError> {
        let modified = self.files.modified();
        let certified = self.files.load()?;
        self.current.store(Arc::new(certified));
        *self.loaded_at.lock().expect("tls lock") = modified;
        tracing::info!(cert = %self.files.cert.display(), "TLS certificate reloaded");
        Ok(())
    }

    /// Reloads when the files changed since the last load.
    pub fn reload_if_changed(&self) {
        let modified = self.files.modified();
        if modified.is_some() && modified != *self.loaded_at.lock().expect("tls lock") {
            if let Err(e) = self.reload() {
                tracing::warn!(error = %e, "TLS certificate files changed but cannot be loaded; keeping the current one");
            }
        }
    }

    /// The rustls server config that resolves through this certificate (HTTP/1.1 only: it
    /// carries the WebSocket upgrades).
    pub fn server_config(self: &Arc<Self>) -> ServerConfig {
        let mut config = ServerConfig::builder_with_provider(Arc::new(default_provider()))
            .with_safe_default_protocol_versions()
            .expect("ring supports the default TLS versions")
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        config
    }

    /// Watches the files and reloads on change, every `every`.
    pub fn watch(self: &Arc<Self>, every: Duration) {
        let cert = Arc::downgrade(self);
        actix_web::rt::spawn(async move {
            let mut interval = actix_web::rt::time::interval(every);
            loop {
                interval.tick().await;
                let Some(cert) = cert.upgrade() else { return };
                cert.reload_if_changed();
            }
        });
    }
}
