//! The object half of a restore: unpack and check the archive, order the objects, apply
//! the per-kind transforms and mappings, create (or update) each object, and record every
//! decision — nothing is dropped silently.

pub mod actions;
mod apply;
pub mod class_config;
pub mod compare;
mod objects;
pub mod order;
mod plan;
pub mod records;
mod report;
pub mod request;
pub mod run;

pub use records::RestoreRecords;
pub use request::{ExistingResourcePolicy, RestoreRequest, parse_mappings};
pub use run::{run_restore, run_restore_with_volumes};
