//! Which namespaces and resource types a backup or restore covers, with Velero's flag
//! semantics: an include list (default `*`) minus an exclude list.

use super::types::ResourceType;
use crate::{Error, Result};

/// Namespace include/exclude lists; entries may use `*` and `?` wildcards.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct NamespaceFilter {
    /// Namespaces to cover; empty means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    /// Namespaces to leave out, even when included.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
}

impl NamespaceFilter {
    /// True when `namespace` is covered.
    pub fn matches(&self, namespace: &str) -> bool {
        let included =
            self.include.is_empty() || self.include.iter().any(|p| p == "*" || glob(p, namespace));
        included && !self.exclude.iter().any(|p| glob(p, namespace))
    }

    /// True when every namespace is covered.
    pub fn is_all(&self) -> bool {
        (self.include.is_empty() || self.include.iter().any(|p| p == "*"))
            && self.exclude.is_empty()
    }

    /// The included namespaces when they are plain names (no wildcard), so each can be
    /// listed on its own instead of listing the whole cluster.
    pub fn exact_names(&self) -> Option<Vec<&str>> {
        if self.include.is_empty() || self.include.iter().any(|p| p.contains(['*', '?'])) {
            return None;
        }
        Some(
            self.include
                .iter()
                .map(String::as_str)
                .filter(|n| self.matches(n))
                .collect(),
        )
    }
}

/// Resource include/exclude lists: each entry is a resource (`deployments`), a
/// `resource.group`, a kind (`Deployment`), a short name (`deploy`) or `*`.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct ResourceFilter {
    /// Types to cover; empty means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub include: Vec<String>,
    /// Types to leave out.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
}

impl ResourceFilter {
    /// True when `rt` is covered.
    pub fn matches(&self, rt: &ResourceType) -> bool {
        let included =
            self.include.is_empty() || self.include.iter().any(|p| pattern_matches(p, rt));
        included && !self.exclude.iter().any(|p| pattern_matches(p, rt))
    }

    /// True when the user named this type explicitly in the include list (so defaults
    /// such as "events are not backed up" give way).
    pub fn explicitly_includes(&self, rt: &ResourceType) -> bool {
        self.include
            .iter()
            .any(|p| p != "*" && pattern_matches(p, rt))
    }

    /// Fails with one error listing every entry that names no known type.
    pub fn validate(&self, known: &[ResourceType], what: &str) -> Result<()> {
        let unknown = unknown_entries(self.include.iter().chain(&self.exclude), known);
        unknown_error(&unknown, what)
    }

    /// Fails when an include entry names no known type (a typo there would silently
    /// select nothing); returns the exclude entries that name no known type, which exclude
    /// nothing and deserve only a warning (a restore runbook may name types a given
    /// cluster and backup do not have).
    pub fn validate_includes(&self, known: &[ResourceType], what: &str) -> Result<Vec<String>> {
        unknown_error(&unknown_entries(&self.include, known), what)?;
        Ok(unknown_entries(&self.exclude, known)
            .into_iter()
            .map(String::from)
            .collect())
    }
}

fn unknown_entries<'a>(
    entries: impl IntoIterator<Item = &'a String>,
    known: &[ResourceType],
) -> Vec<&'a str> {
    entries
        .into_iter()
        .map(String::as_str)
        .filter(|p| *p != "*" && !known.iter().any(|rt| pattern_matches(p, rt)))
        .collect()
}

/// One error naming every unknown entry, or `Ok` when there is none.
fn unknown_error(unknown: &[&str], what: &str) -> Result<()> {
    if unknown.is_empty() {
        return Ok(());
    }
    Err(Error::BadInput(format!(
        "unknown resource {} in {what}: no type {} known to {}; use names from \
         `kubectl api-resources` (resource, resource.group, kind or short name)",
        unknown.join(", "),
        if unknown.len() == 1 {
            "of that name is"
        } else {
            "of those names is"
        },
        if what.contains("restore") {
            "the cluster or the backup"
        } else {
            "the cluster"
        },
    )))
}

/// Matches one filter entry against a type, case-insensitively.
pub fn pattern_matches(pattern: &str, rt: &ResourceType) -> bool {
    let p = pattern.trim().to_ascii_lowercase();
    if p == "*" {
        return true;
    }
    let names = || {
        [
            rt.plural.to_ascii_lowercase(),
            rt.singular.to_ascii_lowercase(),
            rt.kind.to_ascii_lowercase(),
        ]
        .into_iter()
        .chain(rt.short_names.iter().map(|s| s.to_ascii_lowercase()))
        .filter(|n| !n.is_empty())
    };
    if names().any(|n| n == p) {
        return true;
    }
    let group = rt.group.to_ascii_lowercase();
    // `resource.group`, also `resource.version.group` as kubectl accepts.
    names().any(|n| {
        p.strip_prefix(&n)
            .and_then(|rest| rest.strip_prefix('.'))
            .is_some_and(|rest| {
                rest == group
                    || rest
                        .split_once('.')
                        .is_some_and(|(v, g)| v == rt.version && g == group)
            })
    })
}

/// Shell-style matching with `*` (any run) and `?` (one character).
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Splits a comma-separated flag value into trimmed, non-empty entries.
pub fn split_list(values: &[String]) -> Vec<String> {
    values
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(String::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::types::fixtures::{cluster_types, rt};

    #[test]
    fn resources_match_by_plural_group_kind_and_short_name() {
        let deploy = rt("apps", "Deployment", "deployments", &["deploy"], true);
        for p in [
            "deployments",
            "deployments.apps",
            "Deployment",
            "deploy",
            "deployment",
            "deployments.v1.apps",
            "*",
        ] {
            assert!(pattern_matches(p, &deploy), "{p}");
        }
        for p in ["deployments.extensions", "statefulsets", "dep"] {
            assert!(!pattern_matches(p, &deploy), "{p}");
        }
    }

    #[test]
    fn exclude_wins_over_include() {
        let f = ResourceFilter {
            include: vec!["*".into()],
            exclude: vec!["CustomResourceDefinition".into(), "Order".into()],
        };
        let types = cluster_types();
        let covered: Vec<_> = types
            .iter()
            .filter(|t| f.matches(t))
            .map(|t| t.group_resource())
            .collect();
        assert!(!covered.contains(&"customresourcedefinitions.apiextensions.k8s.io".to_string()));
        assert!(!covered.contains(&"orders.acme.cert-manager.io".to_string()));
        assert!(covered.contains(&"configmaps".to_string()));
    }

    #[test]
    fn unknown_resource_in_a_filter_is_named_in_the_error() {
        let f = ResourceFilter {
            include: vec!["configmaps".into(), "deploymnets".into()],
            exclude: vec![],
        };
        let err = f
            .validate(&cluster_types(), "--include-resources")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("deploymnets") && !err.contains("configmaps,"),
            "{err}"
        );
        assert!(err.contains("kubectl api-resources"), "{err}");
    }

    #[test]
    fn unknown_excludes_are_returned_for_a_warning_and_unknown_includes_fail() {
        let f = ResourceFilter {
            include: vec![],
            exclude: vec!["CertificateRequest".into(), "configmaps".into()],
        };
        assert_eq!(
            f.validate_includes(&cluster_types(), "x").unwrap(),
            ["CertificateRequest"]
        );
        let f = ResourceFilter {
            include: vec!["Ordr".into()],
            exclude: vec![],
        };
        assert!(f.validate_includes(&cluster_types(), "x").is_err());
    }

    #[test]
    fn namespace_filter_supports_wildcards_and_exclusions() {
        let f = NamespaceFilter {
            include: vec!["team-*".into(), "prod".into()],
            exclude: vec!["team-scratch".into()],
        };
        assert!(f.matches("team-a") && f.matches("prod"));
        assert!(!f.matches("team-scratch") && !f.matches("default"));
        assert_eq!(f.exact_names(), None);
        let exact = NamespaceFilter {
            include: vec!["a".into(), "b".into()],
            exclude: vec!["b".into()],
        };
        assert_eq!(exact.exact_names(), Some(vec!["a"]));
        assert!(NamespaceFilter::default().is_all());
    }

    #[test]
    fn glob_handles_stars_and_question_marks() {
        assert!(glob("a*c", "abbbc") && glob("a?c", "abc") && glob("*", ""));
        assert!(!glob("a*c", "abd") && !glob("a?c", "ac"));
    }

    #[test]
    fn list_flags_accept_commas_and_repeats() {
        let v = split_list(&["a, b".into(), "c,".into()]);
        assert_eq!(v, vec!["a", "b", "c"]);
    }
}
