//! Which resources are servable right now: the built-in table plus every stored CRD.

use crate::resources::{self, NameRule, PrinterColumn, ResourceType, ScalePaths};
use serde_json::Value;
use std::cmp::Ordering;

/// All servable resource types.
#[derive(Debug, Clone)]
pub struct Registry {
    types: Vec<ResourceType>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            types: resources::builtin(),
        }
    }
}

impl Registry {
    /// Every resource type, built-ins first.
    pub fn all(&self) -> &[ResourceType] {
        &self.types
    }

    /// The type serving `group/version` `plural`, if that version is served.
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceType> {
        self.types
            .iter()
            .find(|t| t.group == group && t.plural == plural && t.serves(version))
    }

    /// The type for a group and plural, whatever the version.
    pub fn find_resource(&self, group: &str, plural: &str) -> Option<&ResourceType> {
        self.types
            .iter()
            .find(|t| t.group == group && t.plural == plural)
    }

    /// The type for a group and kind.
    pub fn find_kind(&self, group: &str, kind: &str) -> Option<&ResourceType> {
        self.types
            .iter()
            .find(|t| t.group == group && t.kind == kind)
    }

    /// Groups with their served versions (preferred first), core group first.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for t in &self.types {
            let entry = match out.iter_mut().position(|(g, _)| *g == t.group) {
                Some(i) => &mut out[i].1,
                None => {
                    out.push((t.group.clone(), Vec::new()));
                    &mut out.last_mut().expect("just pushed").1
                }
            };
            for v in &t.versions {
                if !entry.contains(v) {
                    entry.push(v.clone());
                }
            }
        }
        for (_, versions) in &mut out {
            versions.sort_by(|a, b| version_priority(a, b));
        }
        out
    }

    /// Adds or replaces the type defined by a CRD object; ignores CRDs without a served version.
    pub fn set_crd(&mut self, crd: &Value) {
        let Some(t) = from_crd(crd) else { return };
        self.types
            .retain(|x| !(x.custom && x.group == t.group && x.plural == t.plural));
        self.types.push(t);
    }

    /// Removes the type defined by a deleted CRD.
    pub fn remove_crd(&mut self, crd: &Value) {
        let group = crd
            .pointer("/spec/group")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let plural = crd
            .pointer("/spec/names/plural")
            .and_then(Value::as_str)
            .unwrap_or_default();
        self.types
            .retain(|x| !(x.custom && x.group == group && x.plural == plural));
    }
}

fn s(v: &Value, pointer: &str) -> String {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn strings(v: &Value, pointer: &str) -> Vec<String> {
    v.pointer(pointer)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The resource type a CRD defines, once its names are accepted (before that the API
/// server answers its paths with 404, as upstream).
pub fn from_crd(crd: &Value) -> Option<ResourceType> {
    if !crate::crd_establish::condition_true(crd, "NamesAccepted")
        && !crate::crd_establish::condition_true(crd, "Established")
    {
        return None;
    }
    let group = s(crd, "/spec/group");
    let plural = s(crd, "/spec/names/plural");
    let kind = s(crd, "/spec/names/kind");
    let versions: Vec<&Value> = crd.pointer("/spec/versions")?.as_array()?.iter().collect();
    let served: Vec<&Value> = versions
        .iter()
        .copied()
        .filter(|v| v.get("served").and_then(Value::as_bool).unwrap_or(true))
        .collect();
    if group.is_empty() || plural.is_empty() || kind.is_empty() || served.is_empty() {
        return None;
    }
    let storage = versions
        .iter()
        .copied()
        .find(|v| v.get("storage").and_then(Value::as_bool).unwrap_or(false))
        .unwrap_or(served[0]);
    let mut names: Vec<String> = served.iter().map(|v| s(v, "/name")).collect();
    names.sort_by(|a, b| version_priority(a, b));
    let singular = match s(crd, "/spec/names/singular") {
        x if x.is_empty() => kind.to_lowercase(),
        x => x,
    };
    let list_kind = match s(crd, "/spec/names/listKind") {
        x if x.is_empty() => format!("{kind}List"),
        x => x,
    };
    let scale = storage.pointer("/subresources/scale").map(|sc| ScalePaths {
        spec_replicas: s(sc, "/specReplicasPath"),
        status_replicas: s(sc, "/statusReplicasPath"),
        label_selector: s(sc, "/labelSelectorPath"),
    });
    let columns = storage
        .get("additionalPrinterColumns")
        .and_then(Value::as_array)
        .map(|cols| {
            cols.iter()
                .map(|c| PrinterColumn {
                    name: s(c, "/name"),
                    type_: s(c, "/type"),
                    json_path: s(c, "/jsonPath"),
                    priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0),
                    description: s(c, "/description"),
                })
                .collect()
        })
        .unwrap_or_default();
    Some(ResourceType {
        group,
        storage: s(storage, "/name"),
        versions: names,
        singular,
        kind,
        list_kind,
        namespaced: s(crd, "/spec/scope") != "Cluster",
        short_names: strings(crd, "/spec/names/shortNames"),
        categories: strings(crd, "/spec/names/categories"),
        status: storage.pointer("/subresources/status").is_some(),
        scale,
        connect_subresources: Vec::new(),
        generation: true,
        name_rule: NameRule::Subdomain,
        columns,
        schema: storage.pointer("/schema/openAPIV3Schema").cloned(),
        custom: true,
        review: false,
        plural,
    })
}

/// Orders versions as Kubernetes does: GA before beta before alpha, higher numbers first,
/// anything else last and alphabetically.
pub fn version_priority(a: &str, b: &str) -> Ordering {
    fn parse(v: &str) -> Option<(u32, u8, u32)> {
        let rest = v.strip_prefix('v')?;
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        let major: u32 = digits.parse().ok()?;
        let tail = &rest[digits.len()..];
        if tail.is_empty() {
            return Some((major, 2, 0));
        }
        let (stage, num) = if let Some(n) = tail.strip_prefix("beta") {
            (1, n)
        } else if let Some(n) = tail.strip_prefix("alpha") {
            (0, n)
        } else {
            return None;
        };
        Some((major, stage, num.parse().ok()?))
    }
    match (parse(a), parse(b)) {
        (Some((ma, sa, na)), Some((mb, sb, nb))) => sb.cmp(&sa).then(mb.cmp(&ma)).then(nb.cmp(&na)),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}
