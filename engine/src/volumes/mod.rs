//! Pod volume data: which claims a backup copies ([`plan`]), the mover pods that copy them
//! ([`mover_pod`], [`launch`], [`mover_run`]), CSI snapshots ([`snapshots`]), and the
//! [`step::MoverStep`] that plugs all of it into backups and restores.
//!
//! A mover is an ordinary pod in the application's namespace that mounts one claim (read-only
//! for backups), runs `kubectl-vbackup mover` from vbackup's image, and talks to the location
//! itself, so data goes from the node straight to the object store. Its job — including the
//! repository password and store credentials — reaches it through a short-lived Secret owned
//! by the pod; progress comes back as JSON lines on its output, the result as its termination
//! message.

pub mod explain;
pub mod files;
pub mod job;
pub mod launch;
pub mod mover_pod;
pub mod mover_run;
pub mod plan;
pub mod snapshots;
pub mod step;

pub use mover_pod::AppSecurity;
pub use step::{MoverSettings, MoverStep, VolumeObserver};
