//! The object half of a backup: discover every type, list what the filters select (paged),
//! add what selected workloads depend on, strip server fields, and stream it all into the
//! location as `resources.tar.gz`.

pub mod archive;
pub mod backup;
pub mod decide;
pub mod deps;
pub mod discovery;
pub mod filter;
pub mod request;
pub mod sanitize;
pub mod selector;
pub mod skip;
pub mod types;
mod walk;

pub use backup::{Progress, run_backup, run_backup_with_volumes};
pub use request::{BackupRequest, ClusterResources, VolumeOptions};
