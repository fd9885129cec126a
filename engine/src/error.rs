//! The engine's one error type: each variant names what failed and what to do about it.

use std::path::PathBuf;

/// Result with the engine's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the engine, phrased for the person who has to fix it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A write was attempted on a location whose access mode is `ReadOnly`.
    #[error(
        "storage location {location} is ReadOnly: nothing was written; \
         use a ReadWrite location or run `kubectl vbackup location set-readonly {location} --off`"
    )]
    ReadOnly { location: String },

    /// The object does not exist in the location.
    #[error("{key} not found in {location}")]
    NotFound { location: String, key: String },

    /// The bucket named by an S3 location does not exist.
    #[error("bucket {bucket} does not exist at {endpoint}: create it, or fix --bucket")]
    NoSuchBucket { bucket: String, endpoint: String },

    /// The object store refused the credentials.
    #[error(
        "access denied by {endpoint} for bucket {bucket} ({detail}): check the access key and \
         secret in the location's credentials Secret and the bucket policy"
    )]
    AccessDenied {
        bucket: String,
        endpoint: String,
        detail: String,
    },

    /// The object store could not be reached at all.
    #[error("cannot reach {endpoint}: {detail}; check --endpoint, the network and TLS settings")]
    Unreachable { endpoint: String, detail: String },

    /// Any other object-store failure, with the operation and the store's own words.
    #[error("{op} {key} on {location} failed: {detail}")]
    Store {
        op: &'static str,
        location: String,
        key: String,
        detail: String,
    },

    /// A local filesystem operation failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// Bad input: a flag, a name, a selector, a key or configuration the user gave; the
    /// message says what to fix.
    #[error("{0}")]
    BadInput(String),

    /// No backup of that name (in the named location, or in any location).
    #[error(
        "backup {name} not found in {}: list backups with `kubectl vbackup backup get`",
        location.as_deref().map_or_else(|| "any storage location".to_string(), |l| format!("location {l}"))
    )]
    BackupNotFound {
        name: String,
        location: Option<String>,
    },

    /// No restore record of that name.
    #[error("restore {name} not found: list restores with `kubectl vbackup restore get`")]
    RestoreNotFound { name: String },

    /// No storage location of that name.
    #[error(
        "storage location {name} not found in namespace {namespace}: list them with \
         `kubectl vbackup location get`"
    )]
    LocationNotFound { name: String, namespace: String },

    /// Stored data is damaged, truncated or not what it claims to be.
    #[error("{0}")]
    Corrupt(String),

    /// A backup or restore ran, but its record could not be saved; the message says what
    /// happened to it and how to clean up.
    #[error("{0}")]
    RecordNotSaved(String),

    /// A failure inside vbackup itself (encoding, a worker that died, the random generator).
    #[error("internal error: {0}")]
    Internal(String),

    /// The Kubernetes API refused or failed a request.
    #[error("{context}: {source}")]
    Kube {
        context: String,
        #[source]
        source: kube::Error,
    },

    /// A custom resource type vbackup needs is not installed in the cluster.
    #[error(
        "the {kind} custom resource is not installed in this cluster: run `kubectl vbackup install` \
         or `kubectl apply -f manifests/crds/`"
    )]
    CrdMissing { kind: &'static str },

    /// The location key does not open a repository's sealed password.
    #[error(
        "the location key does not open the repository of namespace {namespace} in {location} \
         (wrong key, or {key_object} was altered): import the key this location was created \
         with (`kubectl vbackup location import-key`)"
    )]
    WrongLocationKey {
        namespace: String,
        location: String,
        key_object: String,
    },

    /// A namespace has no volume-data repository in the location.
    #[error(
        "namespace {namespace} has no volume-data repository in {location} ({key_object} is \
         missing): back the namespace up first, or check the location and namespace names"
    )]
    RepoMissing {
        namespace: String,
        location: String,
        key_object: String,
    },

    /// A repository operation (rustic_core) failed; `detail` carries rustic's own words.
    #[error("{op} in the repository of namespace {namespace} failed: {detail}")]
    Repo {
        op: &'static str,
        namespace: String,
        detail: String,
    },

    /// A mover pod could not start; `reason` is the cluster's own.
    #[error("{what} could not start: {reason}")]
    MoverNotStarted { what: String, reason: String },

    /// A CSI snapshot failed or made no progress.
    #[error("{0}")]
    Snapshot(String),

    /// The user stopped the operation (Ctrl-C).
    #[error("{0}")]
    Cancelled(String),

    /// Something installed did not become ready in time (the message says why and where to
    /// look).
    #[error("{0}")]
    NotReady(String),

    /// A volume copy made no progress for longer than the configured stall period.
    #[error(
        "{what} made no progress for {stalled_for:?} (stall period): the source or the \
         object store is hanging; check the volume and the location, or raise the stall period"
    )]
    Stalled {
        what: String,
        stalled_for: std::time::Duration,
    },
}

impl Error {
    /// Wraps an I/O error with the operation and path it concerns.
    pub fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }

    /// Wraps a Kubernetes API error with what was being done.
    pub fn kube(context: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
        let context = context.into();
        move |source| Error::Kube { context, source }
    }

    /// True when the error means "this object does not exist".
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }
}
