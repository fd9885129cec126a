//! Application hooks around volume copies: database awareness the admission webhook uses to
//! add dump hooks, and (next) Velero-compatible exec hooks and streaming dumps.

pub mod databases;
