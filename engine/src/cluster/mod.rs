//! Talking to the Kubernetes API: the one place that builds a client, and paged lists.

pub mod client;
pub mod crds;
pub mod list;

pub use client::{ClusterOptions, connect, install_crypto_provider};
pub use list::{PAGE_SIZE, Pages, list_all, list_names};
