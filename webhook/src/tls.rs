//! The serving certificate, read from files (a mounted Secret) and swapped in when they
//! change: the next TLS handshake presents the new one, no restart, no dropped connection.

use std::fs::Metadata;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::{Context, anyhow};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// How often the files are checked. A Secret update reaches the pod's mount after up to a
/// minute anyway; a cheap `stat` every second keeps the window after that short.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Resolves every handshake to the certificate currently on disk.
#[derive(Debug)]
pub struct ReloadingCert {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
    stamp: RwLock<Stamp>,
    /// Successful reloads after the first load.
    pub reloads: AtomicU64,
    /// Reloads that failed (the previous certificate stays in use).
    pub reload_errors: AtomicU64,
}

/// What identifies one version of the two files: kubelet replaces a Secret's files through a
/// symlink swap, which changes their modification times.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp(Option<(SystemTime, u64)>, Option<(SystemTime, u64)>);

impl ReloadingCert {
    /// Loads the certificate chain and key; fails when either cannot be read.
    pub fn load(cert_path: &Path, key_path: &Path) -> anyhow::Result<Self> {
        let stamp = stamp(cert_path, key_path);
        let key = read_certified_key(cert_path, key_path)?;
        Ok(ReloadingCert {
            cert_path: cert_path.into(),
            key_path: key_path.into(),
            current: RwLock::new(Arc::new(key)),
            stamp: RwLock::new(stamp),
            reloads: AtomicU64::new(0),
            reload_errors: AtomicU64::new(0),
        })
    }

    /// Reloads when the files changed since the last look. A half-written pair (a new
    /// certificate with the old key) fails to load and is retried on the next look.
    pub fn reload_if_changed(&self) {
        let now = stamp(&self.cert_path, &self.key_path);
        if *read(&self.stamp) == now {
            return;
        }
        match read_certified_key(&self.cert_path, &self.key_path) {
            Ok(key) => {
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(key);
                *self.stamp.write().unwrap_or_else(|e| e.into_inner()) = now;
                self.reloads.fetch_add(1, Ordering::Relaxed);
                tracing::info!(cert = %self.cert_path.display(), "serving certificate reloaded");
            }
            Err(e) => {
                self.reload_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("keeping the current serving certificate: {e:#}");
            }
        }
    }

    /// Checks the files every [`POLL_INTERVAL`] for as long as the process runs.
    pub fn watch(self: Arc<Self>) {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(POLL_INTERVAL);
            loop {
                tick.tick().await;
                let this = self.clone();
                // Reading files blocks: keep it off the request workers.
                let _ = tokio::task::spawn_blocking(move || this.reload_if_changed()).await;
            }
        });
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(read(&self.current).clone())
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    // A panic while holding the lock cannot leave a half-written Arc: keep serving.
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn stamp(cert: &Path, key: &Path) -> Stamp {
    let look = |p: &Path| {
        std::fs::metadata(p)
            .ok()
            .and_then(|m: Metadata| Some((m.modified().ok()?, m.len())))
    };
    Stamp(look(cert), look(key))
}

fn read_certified_key(cert_path: &Path, key_path: &Path) -> anyhow::Result<CertifiedKey> {
    let cert_pem = std::fs::read(cert_path)
        .with_context(|| format!("cannot read the certificate {}", cert_path.display()))?;
    let key_pem = std::fs::read(key_path)
        .with_context(|| format!("cannot read the private key {}", key_path.display()))?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{} is not PEM", cert_path.display()))?;
    if chain.is_empty() {
        return Err(anyhow!(
            "{} holds no CERTIFICATE block",
            cert_path.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .with_context(|| format!("{} holds no usable PEM private key", key_path.display()))?;
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    let certified = CertifiedKey::from_der(chain, key, &provider).with_context(|| {
        format!(
            "{} and {} do not form a usable pair",
            cert_path.display(),
            key_path.display()
        )
    })?;
    Ok(certified)
}
