//! `kubectl vbackup explain`: for a pod or a claim, what a backup would do with each volume and
//! why — from the same policy function the webhook and backups use.

use std::collections::BTreeMap;

use serde::Serialize;

use super::plan::{NamespaceState, gather};
use crate::policy::admission::Untouched;
use crate::policy::{
    ExcludePaths, PolicyInput, PolicyOptions, ResourcePolicies, VolumeDecision,
    admission_annotations, decide_pod, decide_unused_claim, exclude_paths,
};
use crate::{Error, Result};

/// What a backup would do with the volumes of a pod, or with a claim.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    /// `pod/NAME` or `pvc/NAME`, in `namespace`.
    pub target: String,
    /// Its namespace.
    pub namespace: String,
    /// One decision per volume, with the pod that mounts it (`None`: a claim no pod uses).
    pub volumes: Vec<(Option<String>, VolumeDecision)>,
    /// Paths excluded inside each copied claim.
    pub excludes: Vec<(String, ExcludePaths)>,
    /// For a pod: what the admission webhook adds to it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookAnswer>,
}

/// What the admission webhook does with a pod, from the same function it runs.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookAnswer {
    /// The BackupPolicy that applies (`default`: the built-in one).
    pub policy: String,
    /// The annotations it adds (the pod's own keys are never changed).
    pub adds: BTreeMap<String, String>,
    /// Why it adds nothing, when it adds nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub untouched: Option<String>,
}

/// What to explain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A pod, by name.
    Pod(String),
    /// A claim, by name.
    Claim(String),
}

impl Target {
    /// Parses `pod/NAME` or `pvc/NAME` (kubectl's spellings of the types are accepted).
    pub fn parse(text: &str) -> Result<Target> {
        let (kind, name) = text.split_once('/').ok_or_else(|| {
            Error::BadInput(format!(
                "{text:?}: name what to explain as pod/NAME or pvc/NAME"
            ))
        })?;
        if name.is_empty() {
            return Err(Error::BadInput(format!("{text:?}: the name is missing")));
        }
        match kind {
            "pod" | "pods" | "po" => Ok(Target::Pod(name.into())),
            "pvc" | "pvcs" | "persistentvolumeclaim" | "persistentvolumeclaims" => {
                Ok(Target::Claim(name.into()))
            }
            other => Err(Error::BadInput(format!(
                "{other:?} cannot be explained: name a pod (pod/NAME) or a claim (pvc/NAME)"
            ))),
        }
    }
}

/// Explains `target` in `namespace` for a backup with `options` and `policies`.
pub async fn explain(
    client: &kube::Client,
    namespace: &str,
    target: &Target,
    options: PolicyOptions,
    policies: Option<&ResourcePolicies>,
    snapshot_class: Option<&str>,
) -> Result<Explanation> {
    let state = gather(client, namespace, snapshot_class).await?;
    explain_in(&state, target, options, policies)
}

/// [`explain`] on a namespace already read.
pub fn explain_in(
    state: &NamespaceState,
    target: &Target,
    options: PolicyOptions,
    policies: Option<&ResourcePolicies>,
) -> Result<Explanation> {
    let input = PolicyInput {
        namespace_labels: &state.labels,
        claims: &state.claims,
        policies,
        options,
    };
    let ns = &state.name;
    let mut webhook = None;
    let (label, volumes) = match target {
        Target::Pod(name) => {
            let pod = state
                .pods
                .iter()
                .find(|p| p.metadata.name.as_deref() == Some(name.as_str()))
                .ok_or_else(|| Error::BadInput(format!("pod {ns}/{name} not found")))?;
            let policy = state.policy_for(pod);
            webhook = Some(match admission_annotations(pod, &state.labels, &policy) {
                Ok(adds) => WebhookAnswer {
                    policy: policy.name,
                    adds,
                    untouched: None,
                },
                Err(why) => WebhookAnswer {
                    policy: policy.name,
                    adds: BTreeMap::new(),
                    untouched: Some(match why {
                        Untouched::AlreadyAnnotated => {
                            "the pod carries vbackup's annotations already".to_string()
                        }
                        Untouched::Excluded(why) => why,
                    }),
                },
            });
            let decisions = decide_pod(pod, &input);
            (
                format!("pod/{name}"),
                decisions
                    .into_iter()
                    .map(|d| (Some(name.clone()), d))
                    .collect::<Vec<_>>(),
            )
        }
        Target::Claim(name) => {
            let claim = state
                .claims
                .get(name)
                .ok_or_else(|| Error::BadInput(format!("claim {ns}/{name} not found")))?;
            let mut found = Vec::new();
            for pod in &state.pods {
                for d in decide_pod(pod, &input) {
                    if d.claim.as_deref() == Some(name.as_str()) {
                        found.push((pod.metadata.name.clone(), d));
                    }
                }
            }
            if found.is_empty() {
                found.push((None, decide_unused_claim(claim, &input)));
            }
            (format!("pvc/{name}"), found)
        }
    };
    let excludes = volumes
        .iter()
        .filter_map(|(_, d)| d.claim.as_ref())
        .filter_map(|c| state.claims.get(c).map(|f| (c, f)))
        .map(|(c, f)| {
            (
                c.clone(),
                exclude_paths::for_claim(
                    c,
                    f.pvc
                        .metadata
                        .annotations
                        .as_ref()
                        .unwrap_or(&Default::default()),
                ),
            )
        })
        .filter(|(_, e)| !e.patterns.is_empty() || !e.warnings.is_empty())
        .collect();
    Ok(Explanation {
        target: label,
        namespace: ns.clone(),
        volumes,
        excludes,
        webhook,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_use_kubectl_spellings() {
        assert_eq!(
            Target::parse("pod/web-0").unwrap(),
            Target::Pod("web-0".into())
        );
        assert_eq!(
            Target::parse("pvc/data").unwrap(),
            Target::Claim("data".into())
        );
        assert_eq!(
            Target::parse("persistentvolumeclaim/data").unwrap(),
            Target::Claim("data".into())
        );
        assert!(
            Target::parse("deployment/web")
                .unwrap_err()
                .to_string()
                .contains("pod/NAME")
        );
        assert!(Target::parse("web").is_err());
    }
}
