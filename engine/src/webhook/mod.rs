//! The admission webhook's behaviour: reading an AdmissionReview for a pod, answering it with
//! the annotations the volume policy implies, and the MutatingWebhookConfiguration that
//! registers it. The `vbackup-webhook` binary only serves this over HTTPS.

pub mod config;
pub mod mutate;
pub mod validate;

pub use config::mutating_webhook_configuration;
pub use mutate::{ClusterView, Outcome, Reply, StaticView, mutate};

#[cfg(test)]
mod tests;
