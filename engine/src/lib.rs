//! vbackup's engine: every piece of backup and restore behaviour lives here.
//!
//! The plugin (`kubectl-vbackup`) and the admission webhook are thin shells around it:
//! they parse input, call the engine and render its results.

pub mod backups;
pub mod cluster;
pub mod crds;
pub mod error;
pub mod hooks;
pub mod install;
pub mod keys;
pub mod policy;
pub mod repo;
pub mod resources;
pub mod restore;
pub mod schedules;
pub mod store;
pub mod velero;
pub mod verify;
pub mod volumes;
pub mod webhook;

pub use error::{Error, Result};
