//! A namespace repository opened for one operation: config and key read once, the index
//! read once for the reads that need it, stall detection around every blocking job.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use rustic_core::repofile::MasterKey;
use rustic_core::{
    ConfigOptions, Credentials, IndexedFullStatus, KeyOptions, OpenStatus, Repository,
    RepositoryBackends, RepositoryOptions, RusticError,
};
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info_span, warn};

use super::backend::StoreBackend;
use super::progress::{Activity, ActivityBars, ProgressFn, supervise};
use super::{RepoOptions, secrets, validate_namespace};
use crate::keys::{self, LocationKey, RepoPassword, RepoSecrets};
use crate::store::{Store, layout};
use crate::{Error, Result};

/// One namespace's repository, opened with its unsealed password.
///
/// Clones share the session: the opened repository and its index are kept between calls.
#[derive(Clone)]
pub struct VolumeRepo {
    pub(super) store: Store,
    pub(super) namespace: String,
    /// The location key, to seal the master key once known; movers open repositories from
    /// handed-over secrets and never see it.
    location_key: Option<LocationKey>,
    password: RepoPassword,
    pub(super) options: RepoOptions,
    /// The repository's master key, once known (scrypt costs ~0.1 s and 128 MiB otherwise).
    master_key: Arc<OnceLock<MasterKey>>,
    session: Arc<Mutex<Arc<Session>>>,
}

impl std::fmt::Debug for VolumeRepo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The password and the master key never appear, not even in debug output.
        f.debug_struct("VolumeRepo")
            .field("store", &self.store)
            .field("namespace", &self.namespace)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// What a session keeps between operations. A session whose operation stalled is dropped
/// (its cancellation stays set, so the abandoned job winds down) and a fresh one replaces it.
struct Session {
    activity: Activity,
    cancel: CancellationToken,
    /// The one backend: rustic's (see [`Session::backends`]) and the restore's pack reads.
    backend: Arc<StoreBackend>,
    state: Mutex<Option<State>>,
    /// Held by the blocking job while it runs: operations of a session never overlap.
    busy: Arc<tokio::sync::Mutex<()>>,
}

/// The opened repository, with or without its full index.
pub(crate) enum State {
    /// Config and key read.
    Open(Repository<OpenStatus>),
    /// Also indexed, from the index files listed (their keys).
    Full(Repository<IndexedFullStatus>, Vec<String>),
}

impl State {
    /// The repository with a full index that reflects `listing` (the index files present
    /// now), reading the index again when it changed since it was read.
    pub(crate) fn full(
        self,
        listing: Vec<String>,
    ) -> Result<(Repository<IndexedFullStatus>, Vec<String>)> {
        match self {
            State::Full(repo, read) if read == listing => Ok((repo, read)),
            other => Ok((other.into_open().to_indexed()?, listing)),
        }
    }

    /// The repository without an index (after a write, the index is stale).
    pub(crate) fn into_open(self) -> Repository<OpenStatus> {
        match self {
            State::Open(repo) => repo,
            State::Full(repo, _) => repo.drop_index(),
        }
    }
}

/// Runs `$body` with `$repo` bound to the opened repository, whatever its index state.
macro_rules! with_repo {
    ($state:expr, $repo:ident => $body:expr) => {
        match $state {
            $crate::repo::session::State::Open($repo) => $body,
            $crate::repo::session::State::Full($repo, _) => $body,
        }
    };
}
pub(crate) use with_repo;

impl VolumeRepo {
    /// Opens the namespace's repository, creating it (with a fresh random password sealed
    /// with `key`) when the namespace has none yet. Returns the repository and whether it was
    /// created.
    ///
    /// Any number of processes may do this at once for the same namespace: the sealed
    /// password is created only if absent and read back, so all of them use the one stored.
    pub async fn open_or_init(
        store: &Store,
        namespace: &str,
        key: &LocationKey,
        options: RepoOptions,
    ) -> Result<(VolumeRepo, bool)> {
        validate_namespace(namespace)?;
        let span = info_span!("repository", namespace, op = "open or create");
        async {
            let secrets = secrets::load_or_create(store, namespace, key).await?;
            let repo = VolumeRepo::new(store, namespace, Some(key), &secrets, options);
            let created = repo.init_if_missing().await?;
            repo.keep_master_key(&secrets).await?;
            Ok((repo, created))
        }
        .instrument(span)
        .await
    }

    /// Opens the namespace's existing repository; [`Error::RepoMissing`] when it has none,
    /// [`Error::WrongLocationKey`] when `key` is not the location's key.
    pub async fn open(
        store: &Store,
        namespace: &str,
        key: &LocationKey,
        options: RepoOptions,
    ) -> Result<VolumeRepo> {
        validate_namespace(namespace)?;
        let secrets = secrets::unseal_stored(store, namespace, key).await?;
        if store.head(&layout::repo_config(namespace)).await?.is_none() {
            return Err(Error::RepoMissing {
                namespace: namespace.into(),
                location: store.name().into(),
                key_object: layout::repo_config(namespace),
            });
        }
        let repo = VolumeRepo::new(store, namespace, Some(key), &secrets, options);
        // Fail here, not in the first operation, if the password does not open it; the
        // opened repository stays in the session for the operations that follow.
        repo.run("open", None, None, |state, _| Ok(((), state)))
            .await?;
        repo.keep_master_key(&secrets).await?;
        Ok(repo)
    }

    /// Opens a namespace's existing repository to read it: with the location key, or for a
    /// Velero bucket with Velero's repository password (no key needed).
    pub async fn open_existing(
        store: &Store,
        namespace: &str,
        key: Option<&LocationKey>,
        options: RepoOptions,
    ) -> Result<VolumeRepo> {
        match (store.velero_repo_password(), key) {
            (Some(password), _) => Self::open_velero(store, namespace, password, options).await,
            (None, Some(key)) => Self::open(store, namespace, key, options).await,
            (None, None) => Err(Error::Internal(format!(
                "no location key to open the repository of namespace {namespace} in {}",
                store.name()
            ))),
        }
    }

    /// Opens one of a Velero bucket's restic repositories (`restic/<namespace>/`).
    async fn open_velero(
        store: &Store,
        namespace: &str,
        password: &RepoPassword,
        options: RepoOptions,
    ) -> Result<VolumeRepo> {
        validate_namespace(namespace)?;
        if store.head(&layout::repo_config(namespace)).await?.is_none() {
            return Err(Error::RepoMissing {
                namespace: namespace.into(),
                location: store.name().into(),
                key_object: format!("{}{namespace}/config", layout::VELERO_REPOS),
            });
        }
        let secrets = RepoSecrets {
            password: password.clone(),
            master_key: None,
        };
        VolumeRepo::from_secrets(store, namespace, &secrets, options).await
    }

    /// Opens a namespace's existing repository with secrets unsealed elsewhere (a mover's
    /// job): no location key is needed or kept.
    pub async fn from_secrets(
        store: &Store,
        namespace: &str,
        secrets: &RepoSecrets,
        options: RepoOptions,
    ) -> Result<VolumeRepo> {
        validate_namespace(namespace)?;
        let repo = VolumeRepo::new(store, namespace, None, secrets, options);
        repo.run("open", None, None, |state, _| Ok(((), state)))
            .await?;
        Ok(repo)
    }

    /// The repository's password and master key, to hand to a mover.
    pub fn secrets(&self) -> RepoSecrets {
        RepoSecrets {
            password: self.password.clone(),
            master_key: self
                .master_key
                .get()
                .and_then(|k| serde_json::to_string(k).ok()),
        }
    }

    fn new(
        store: &Store,
        namespace: &str,
        key: Option<&LocationKey>,
        secrets: &RepoSecrets,
        options: RepoOptions,
    ) -> VolumeRepo {
        let master_key = Arc::new(OnceLock::new());
        if let Some(parsed) = secrets.master_key.as_deref().and_then(parse_master_key) {
            let _ = master_key.set(parsed);
        }
        let session = Session::new(store, namespace);
        VolumeRepo {
            store: store.clone(),
            namespace: namespace.into(),
            location_key: key.cloned(),
            password: secrets.password.clone(),
            options,
            master_key,
            session: Arc::new(Mutex::new(Arc::new(session))),
        }
    }

    /// Where `path` (relative to the volume root) is in this repository's snapshots.
    pub(crate) fn snapshot_path(&self, path: &str) -> Result<String> {
        let root = match self.store.format() {
            crate::store::Format::Vbackup => super::SNAPSHOT_ROOT,
            crate::store::Format::Velero => "/",
        };
        super::snapshot_path(root, path)
    }

    /// The namespace this repository belongs to.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The repository's own password, for `restic`/`rustic` (`kubectl vbackup repo password`).
    /// Show it only on explicit request; never log it.
    pub fn password(&self) -> &RepoPassword {
        &self.password
    }

    /// Makes sure the password opens the repository with the stock tools: a repository whose
    /// creator stopped between writing its config and its password key file gets the key
    /// file now.
    pub async fn ensure_password_key(&self) -> Result<()> {
        let password = self.password.clone();
        let backends = self.current_session().backends();
        let opts = self.repo_options();
        let works = tokio::task::spawn_blocking(move || {
            Repository::new(&opts, &backends)
                .and_then(|r| r.open(&Credentials::password(password.reveal())))
                .is_ok()
        })
        .await
        .map_err(|e| Error::Internal(format!("the key check stopped: {e}")))?;
        if works {
            return Ok(());
        }
        self.store.ensure_writable()?;
        let password = self.password.clone();
        self.run("add password key", None, None, move |state, _| {
            let repo = state.into_open();
            repo.add_key(password.reveal(), &KeyOptions::default())?;
            Ok(((), State::Open(repo)))
        })
        .await
    }

    /// Seals the master key next to the password once it is known, so later opens skip
    /// scrypt. Only for passwords sealed by older versions, which sealed no master key;
    /// skipped on read-only locations.
    async fn keep_master_key(&self, sealed: &RepoSecrets) -> Result<()> {
        let Some(location_key) = &self.location_key else {
            return Ok(());
        };
        if sealed.master_key.is_some() || self.store.ensure_writable().is_err() {
            return Ok(());
        }
        let Some(master_key) = self.master_key.get() else {
            return Ok(());
        };
        let text = serde_json::to_string(master_key)
            .map_err(|e| Error::Internal(format!("encoding the master key failed: {e}")))?;
        let secrets = RepoSecrets {
            password: self.password.clone(),
            master_key: Some(text),
        };
        self.store
            .put(
                &layout::repo_sealed_key(&self.namespace),
                keys::seal(location_key, &self.namespace, &secrets)?,
            )
            .await
    }

    /// Creates the rustic repository when only its sealed password exists; true if created.
    ///
    /// The repository is created with the sealed master key, so a concurrent creator of the
    /// same namespace (which read the same sealed object) writes a config and key that open
    /// with the same secrets; the config is written only if absent, and the loser opens what
    /// the winner wrote.
    async fn init_if_missing(&self) -> Result<bool> {
        if self
            .store
            .head(&layout::repo_config(&self.namespace))
            .await?
            .is_some()
        {
            self.run("open", None, None, |state, _| Ok(((), state)))
                .await?;
            return Ok(false);
        }
        self.store.ensure_writable()?;
        let this = self.clone();
        let session = self.current_session();
        let created = tokio::task::spawn_blocking(move || {
            let t = this.options.tuning;
            let config = ConfigOptions::default()
                .set_compression(t.compression)
                .set_datapack_size(bytesize(t.datapack_size))
                .set_datapack_size_limit(bytesize(t.datapack_size_limit))
                .set_extra_verify(t.extra_verify);
            let credentials = match this.master_key.get() {
                Some(key) => Credentials::Masterkey(key.clone()),
                // A password sealed by an older version: rustic makes the master key.
                None => Credentials::password(this.password.reveal()),
            };
            let fresh = Repository::new_with_progress(
                &this.repo_options(),
                &session.backends(),
                ActivityBars(session.activity.clone()),
            )
            .map_err(|e| this.rustic_error("create", &e))?;
            match fresh
                .clone()
                .init(&credentials, &KeyOptions::default(), &config)
            {
                Ok(repo) => {
                    if matches!(credentials, Credentials::Masterkey(_)) {
                        // The key file is what `restic`/`rustic` open with the password.
                        repo.add_key(this.password.reveal(), &KeyOptions::default())
                            .map_err(|e| this.rustic_error("create", &e))?;
                    }
                    let _ = this.master_key.set(repo.key());
                    session.keep(State::Open(repo));
                    Ok(true)
                }
                // Another process created it in the meantime: open theirs.
                Err(_) if fresh.config_id().is_ok_and(|id| id.is_some()) => {
                    debug!("another writer created the repository first");
                    Ok(false)
                }
                Err(e) => Err(this.rustic_error("create", &e)),
            }
        })
        .await
        .map_err(|e| Error::Internal(format!("creating the repository stopped: {e}")))??;
        if !created {
            self.run("open", None, None, |state, _| Ok(((), state)))
                .await?;
        }
        Ok(created)
    }

    fn repo_options(&self) -> RepositoryOptions {
        match &self.options.cache_dir {
            Some(dir) => RepositoryOptions::default().cache_dir(dir.clone()),
            None => RepositoryOptions::default().no_cache(true),
        }
    }

    fn current_session(&self) -> Arc<Session> {
        match self.session.lock() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces a session whose operation was abandoned.
    fn discard_session(&self, stale: &Arc<Session>) {
        let mut current = match self.session.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        if Arc::ptr_eq(&current, stale) {
            *current = Arc::new(Session::new(&self.store, &self.namespace));
        }
    }

    pub(super) fn rustic_error(&self, op: &'static str, err: &RusticError) -> Error {
        Error::Repo {
            op,
            namespace: self.namespace.clone(),
            detail: rustic_detail(err),
        }
    }

    /// The index files present now (their keys), to tell whether a kept index is current.
    pub(super) async fn index_listing(&self) -> Result<Vec<String>> {
        let dir = layout::repo_kind_dir(&self.namespace, "index");
        Ok(self
            .store
            .list(&dir)
            .await?
            .into_iter()
            .map(|o| o.key)
            .collect())
    }

    /// The session's backend, for reading pack ranges directly (pack-wise restores); it
    /// shares the session's stall watch and cancellation.
    pub(super) fn pack_reader(&self) -> Arc<StoreBackend> {
        self.current_session().backend.clone()
    }

    /// Runs `job` on the blocking pool with the session's opened repository (opening it
    /// first if needed), reporting progress and watching for stalls. The job hands the
    /// repository back for the next operation.
    pub(super) async fn run<T, F>(
        &self,
        op: &'static str,
        stall_after: Option<Duration>,
        progress: Option<ProgressFn>,
        job: F,
    ) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(State, &Activity) -> Result<(T, State)> + Send + 'static,
    {
        let session = self.current_session();
        let busy = session.busy.clone().lock_owned().await;
        session.activity.reset();
        let this = self.clone();
        let job_session = session.clone();
        let span = info_span!("repository", namespace = %self.namespace, op);
        let handle = tokio::task::spawn_blocking(move || {
            let _busy = busy;
            let _entered = span.entered();
            let state = match job_session.take() {
                Some(state) => state,
                None => State::Open(this.open_rustic(&job_session)?),
            };
            let namespace = this.namespace.clone();
            let (value, state) = job(state, &job_session.activity).map_err(|e| match e {
                Error::Repo { detail, .. } => Error::Repo {
                    op,
                    namespace,
                    detail,
                },
                other => other,
            })?;
            job_session.keep(state);
            Ok(value)
        });
        let result = supervise(
            op,
            &self.namespace,
            handle,
            &session.activity,
            &session.cancel,
            stall_after,
            progress.as_ref(),
        )
        .await;
        if let Err(Error::Stalled { stalled_for, .. }) = &result {
            warn!(namespace = %self.namespace, op, ?stalled_for, "repository operation stalled; abandoned");
            self.discard_session(&session);
        }
        result
    }

    /// Opens the repository with its full index on the calling (blocking) thread, outside
    /// any session: for reading it beside another repository's operation (a copy).
    pub(super) fn open_indexed_blocking(&self) -> Result<Repository<IndexedFullStatus>> {
        let session = self.current_session();
        let repo = self.open_rustic(&session)?;
        repo.to_indexed()
            .map_err(|e| self.rustic_error("read index", &e))
    }

    /// Opens the rustic repository (config and key) through the session's backend.
    fn open_rustic(&self, session: &Session) -> Result<Repository<OpenStatus>> {
        let repo = Repository::new_with_progress(
            &self.repo_options(),
            &session.backends(),
            ActivityBars(session.activity.clone()),
        )
        .and_then(|r| match self.master_key.get() {
            // A stale master key (a repository re-created by hand) falls back to the password.
            Some(key) => r
                .clone()
                .open(&Credentials::Masterkey(key.clone()))
                .or_else(|_| r.open(&Credentials::password(self.password.reveal()))),
            None => r.open(&Credentials::password(self.password.reveal())),
        })
        .map_err(|e| self.rustic_error("open", &e))?;
        let _ = self.master_key.get_or_init(|| repo.key());
        debug!(namespace = %self.namespace, "repository opened");
        Ok(repo)
    }
}

impl Session {
    fn new(store: &Store, namespace: &str) -> Session {
        let activity = Activity::new();
        let cancel = CancellationToken::new();
        let backend = Arc::new(StoreBackend::new(
            store.clone(),
            namespace,
            Handle::current(),
            cancel.clone(),
            activity.clone(),
        ));
        Session {
            activity,
            cancel,
            backend,
            state: Mutex::new(None),
            busy: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// The session's backend as rustic takes it (no hot/cold split).
    fn backends(&self) -> RepositoryBackends {
        RepositoryBackends::new(self.backend.clone(), None)
    }

    fn take(&self) -> Option<State> {
        match self.state.lock() {
            Ok(mut s) => s.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        }
    }

    fn keep(&self, state: State) {
        match self.state.lock() {
            Ok(mut s) => *s = Some(state),
            Err(poisoned) => *poisoned.into_inner() = Some(state),
        }
    }
}

fn parse_master_key(text: &str) -> Option<MasterKey> {
    // An unreadable master key only costs a password open; never fail on it.
    serde_json::from_str(text).ok()
}

impl From<Box<RusticError>> for Error {
    fn from(err: Box<RusticError>) -> Self {
        // Namespace and operation are filled in by `VolumeRepo::run`.
        Error::Repo {
            op: "repository operation",
            namespace: String::new(),
            detail: rustic_detail(&err),
        }
    }
}

/// rustic's error on one line, with advice when it means damaged data.
fn rustic_detail(err: &RusticError) -> String {
    let log = err.display_log();
    let mut detail = log
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(1)
        .collect::<Vec<_>>()
        .join(" ");
    if let Some(rest) = detail.strip_prefix("Error: ") {
        detail = rest.to_string();
    }
    if log.contains("cryptographic operations") || log.contains("MAC check failed") {
        detail.push_str(
            "; the repository data is damaged or was altered: run a check that reads all \
             data to find the damaged packs",
        );
    }
    detail
}

fn bytesize(n: u32) -> bytesize::ByteSize {
    bytesize::ByteSize::b(n.into())
}
