//! Fixtures shared by vbackup's tests.
//!
//! [`PluginCluster`] runs the plugin through real kubectl against a test cluster.
//!
//! [`S3Server`] is a real S3 endpoint: moto's server with authentication on, started once per
//! test process (or reused from `VBACKUP_TEST_S3_*` variables set by the test command), so
//! tests exercise real HTTP, real signatures and real error codes.

pub mod plugin;

pub use plugin::PluginCluster;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};

use anyhow::{Context, bail};
use aws_sdk_s3::config::{Credentials, Region};
use serde::Deserialize;

/// How to reach the test S3 server.
#[derive(Debug, Clone, Deserialize)]
pub struct S3Server {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    /// An access key that the server accepts.
    pub access_key_id: String,
    /// Its secret.
    pub secret_access_key: String,
}

static SERVER: OnceLock<S3Server> = OnceLock::new();
static CHILD: Mutex<Option<Child>> = Mutex::new(None);

impl S3Server {
    /// The shared server: from the environment when the test command started one,
    /// otherwise a moto process started now and kept for the rest of this test process.
    pub fn shared() -> anyhow::Result<&'static S3Server> {
        if let Some(server) = SERVER.get() {
            return Ok(server);
        }
        let server = match from_env() {
            Some(server) => server,
            None => start_moto()?,
        };
        Ok(SERVER.get_or_init(|| server))
    }

    /// An S3 client with this server's credentials.
    pub fn client(&self) -> aws_sdk_s3::Client {
        let config = aws_sdk_s3::Config::builder()
            .behavior_version_latest()
            .region(Region::new("us-east-1"))
            .endpoint_url(&self.endpoint)
            .force_path_style(true)
            .credentials_provider(Credentials::new(
                &self.access_key_id,
                &self.secret_access_key,
                None,
                None,
                "tests",
            ))
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    /// Creates a bucket with a name unique to this process and `label`.
    pub async fn bucket(&self, label: &str) -> anyhow::Result<String> {
        let name = format!("vb-{}-{}-{}", label, std::process::id(), unique());
        self.client()
            .create_bucket()
            .bucket(&name)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("{}", aws_sdk_s3::error::DisplayErrorContext(e)))
            .with_context(|| format!("create bucket {name}"))?;
        Ok(name)
    }
}

impl S3Server {
    /// Uploads every file below `dir` to `bucket`, at `prefix/` + its path relative to `dir`
    /// (a bucket laid out by another tool, built on disk first).
    pub async fn upload_dir(
        &self,
        bucket: &str,
        prefix: &str,
        dir: &Path,
    ) -> anyhow::Result<usize> {
        let client = self.client();
        let mut pending = vec![dir.to_path_buf()];
        let mut uploaded = 0;
        while let Some(current) = pending.pop() {
            for entry in std::fs::read_dir(&current)? {
                let path = entry?.path();
                if path.is_dir() {
                    pending.push(path);
                    continue;
                }
                let rel = path.strip_prefix(dir)?.to_string_lossy().into_owned();
                let key = format!("{}/{rel}", prefix.trim_end_matches('/'));
                client
                    .put_object()
                    .bucket(bucket)
                    .key(&key)
                    .body(std::fs::read(&path)?.into())
                    .send()
                    .await
                    .map_err(|e| anyhow::anyhow!("{}", aws_sdk_s3::error::DisplayErrorContext(e)))
                    .with_context(|| format!("upload {key}"))?;
                uploaded += 1;
            }
        }
        Ok(uploaded)
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn from_env() -> Option<S3Server> {
    Some(S3Server {
        endpoint: std::env::var("VBACKUP_TEST_S3_ENDPOINT").ok()?,
        access_key_id: std::env::var("VBACKUP_TEST_S3_ACCESS_KEY_ID").ok()?,
        secret_access_key: std::env::var("VBACKUP_TEST_S3_SECRET_ACCESS_KEY").ok()?,
    })
}

fn start_moto() -> anyhow::Result<S3Server> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/moto_server.py");
    let mut child = Command::new("python3")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("start moto (python3 -m pip install 'moto[server]')")?;
    let stdout = child.stdout.take().context("moto stdout")?;
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .context("read moto's address")?;
    if line.trim().is_empty() {
        let status = child.wait()?;
        bail!("moto exited ({status}) before it was ready: is `moto[server]` installed?");
    }
    let server: S3Server = serde_json::from_str(line.trim()).context("parse moto's address")?;
    // The child's stdin stays open in CHILD; when this test process exits, the pipe closes
    // and the server stops by itself.
    *CHILD
        .lock()
        .map_err(|_| anyhow::anyhow!("moto lock poisoned"))? = Some(child);
    Ok(server)
}

/// Reproducible bytes from a small xorshift generator: they do not compress.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
