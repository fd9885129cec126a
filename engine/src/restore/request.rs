//! What a restore should do, built once from flags.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::resources::filter::{NamespaceFilter, ResourceFilter, split_list};
use crate::resources::selector::LabelSelector;
use crate::{Error, Result};

/// What to do with an object that exists already.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExistingResourcePolicy {
    /// Leave it, and warn when it differs from the backup.
    #[default]
    None,
    /// Patch it to the backed-up state.
    Update,
}

impl std::str::FromStr for ExistingResourcePolicy {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "none" => Ok(ExistingResourcePolicy::None),
            "update" => Ok(ExistingResourcePolicy::Update),
            other => Err(Error::BadInput(format!(
                "--existing-resource-policy must be none or update, not {other:?}"
            ))),
        }
    }
}

/// Everything that defines one restore.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreRequest {
    /// Restore name (its record's folder).
    pub name: String,
    /// The backup to restore from.
    pub backup: String,
    /// Namespaces restored, by their name in the backup.
    #[serde(default)]
    pub namespaces: NamespaceFilter,
    /// Resource types restored.
    #[serde(default)]
    pub resources: ResourceFilter,
    /// Only objects with these labels.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub selector: String,
    /// Old namespace → new namespace.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub namespace_mappings: BTreeMap<String, String>,
    /// Old storage class → new storage class.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub storage_class_mappings: BTreeMap<String, String>,
    /// Objects that exist already.
    #[serde(default)]
    pub existing_resource_policy: ExistingResourcePolicy,
    /// Keep Services' node ports.
    #[serde(default)]
    pub preserve_node_ports: bool,
    /// Restore volume data (done by the volume-data work; the object restore records it).
    #[serde(default = "yes")]
    pub restore_volumes: bool,
    /// The storage location (`None` = the default location).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_location: Option<String>,
    /// Restore hooks from `--hooks-file` (Velero's `spec.hooks`).
    #[serde(default, skip_serializing_if = "crate::hooks::HookFile::is_empty")]
    pub hooks: crate::hooks::HookFile,
}

fn yes() -> bool {
    true
}

impl RestoreRequest {
    /// A restore of everything in `backup`, with the defaults of `restore create`.
    pub fn new(name: impl Into<String>, backup: impl Into<String>) -> Self {
        RestoreRequest {
            name: name.into(),
            backup: backup.into(),
            namespaces: NamespaceFilter::default(),
            resources: ResourceFilter::default(),
            selector: String::new(),
            namespace_mappings: BTreeMap::new(),
            storage_class_mappings: BTreeMap::new(),
            existing_resource_policy: ExistingResourcePolicy::None,
            preserve_node_ports: false,
            restore_volumes: true,
            storage_location: None,
            hooks: crate::hooks::HookFile::default(),
        }
    }

    /// Checks what can be checked without a cluster; returns the parsed selector.
    pub fn validate(&self) -> Result<LabelSelector> {
        crate::resources::request::validate_name(&self.name, "restore")?;
        crate::resources::request::validate_name(&self.backup, "backup")?;
        LabelSelector::parse(&self.selector)
    }

    /// The namespace an object from `namespace` goes to.
    pub fn target_namespace<'a>(&'a self, namespace: &'a str) -> &'a str {
        self.namespace_mappings
            .get(namespace)
            .map_or(namespace, String::as_str)
    }

    /// The storage class to use instead of `class`.
    pub fn target_storage_class<'a>(&'a self, class: &'a str) -> &'a str {
        self.storage_class_mappings
            .get(class)
            .map_or(class, String::as_str)
    }
}

/// Parses `old:new,old2:new2` (repeatable flag); `what` names the flag in errors.
pub fn parse_mappings(values: &[String], what: &str) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for pair in split_list(values) {
        let (old, new) = pair
            .split_once(':')
            .map(|(o, n)| (o.trim(), n.trim()))
            .filter(|(o, n)| !o.is_empty() && !n.is_empty() && !n.contains(':'))
            .ok_or_else(|| {
                Error::BadInput(format!(
                    "malformed {what} entry {pair:?}: use old:new[,old2:new2…]"
                ))
            })?;
        if let Some(previous) = out.insert(old.to_string(), new.to_string())
            && previous != new
        {
            return Err(Error::BadInput(format!(
                "{what} maps {old} twice (to {previous} and to {new}): keep one"
            )));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mappings_parse_pairs_from_repeated_and_comma_separated_flags() {
        let m = parse_mappings(&["a:b, c:d".into(), "e:f".into()], "--namespace-mappings").unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(m["c"], "d");
    }

    #[test]
    fn malformed_mapping_names_the_flag_and_the_entry() {
        for bad in ["a", "a:", ":b", "a:b:c"] {
            let err = parse_mappings(&[bad.into()], "--namespace-mappings")
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("--namespace-mappings") && err.contains(bad),
                "{err}"
            );
        }
        assert!(parse_mappings(&["a:b,a:c".into()], "--storage-class-mappings").is_err());
    }

    #[test]
    fn unmapped_names_stay_as_they_are() {
        let mut r = RestoreRequest::new("r", "b");
        r.namespace_mappings.insert("nc".into(), "nc2".into());
        assert_eq!(r.target_namespace("nc"), "nc2");
        assert_eq!(r.target_namespace("other"), "other");
        assert_eq!(r.target_storage_class("fast"), "fast");
    }
}
