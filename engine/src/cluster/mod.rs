//! Talking to the Kubernetes API: the one place that builds a client.

pub mod client;

pub use client::{ClusterOptions, connect, install_crypto_provider};
