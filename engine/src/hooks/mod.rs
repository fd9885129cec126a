//! Application hooks around volume copies: Velero-compatible exec hooks ([`annotations`],
//! [`spec`] for `--hooks-file`), run in Velero's order around the copies ([`backup`]),
//! streaming database dumps ([`dump`]), and the database awareness ([`databases`]) the
//! admission webhook uses to add them.

pub mod annotations;
pub mod backup;
pub mod databases;
pub mod dump;
pub mod exec;
pub mod restore;
pub mod spec;
mod types;

pub use backup::{DumpCounts, HookCounts, HookReport};
pub use spec::HookFile;
pub use types::{ExecHook, InitHook, OnError, Problem, RestoreExecHook};
