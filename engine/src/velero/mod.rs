//! Velero's bucket layout, read only: the way off Velero. Its backups are listed and
//! described like vbackup's own, their objects go through vbackup's restore pipeline and
//! their restic-era volume data comes back through restore movers.
//!
//! What Velero leaves in a bucket (`<prefix>/`): `backups/<name>/velero-backup.json` (the
//! `Backup` object), `<name>.tar.gz` (objects under the same paths vbackup uses, plus
//! per-API-version folders in format 1.1), `<name>-podvolumebackups.json.gz`,
//! `<name>-logs.gz`, `<name>-results.gz`; `restic/<namespace>/` restic repositories and
//! `kopia/<namespace>/` kopia ones (not readable here).

pub mod catalog;
mod duration;
pub mod import;
mod types;

/// The password Velero gives its restic repositories unless told otherwise.
pub const DEFAULT_REPO_PASSWORD: &str = "static-passw0rd";

/// The key of Velero's `velero-repo-credentials` Secret that holds the password.
pub const REPO_PASSWORD_KEY: &str = "repository-password";
