//! The one generic object store: JSON objects keyed by group/resource/namespace/name,
//! optionally persisted as one file per object under a state directory.

use anyhow::Context;
use serde_json::Value;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::{Path, PathBuf};

/// Where an object lives; `namespace` is empty for cluster-scoped objects.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    /// API group (`""` for core).
    pub group: String,
    /// Plural resource name.
    pub resource: String,
    /// Namespace or `""`.
    pub namespace: String,
    /// Object name.
    pub name: String,
}

impl ObjectKey {
    /// Builds a key.
    pub fn new(group: &str, resource: &str, namespace: &str, name: &str) -> Self {
        ObjectKey {
            group: group.into(),
            resource: resource.into(),
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

/// Objects in key order (the order lists are returned in), plus the persistence directory.
#[derive(Debug, Default)]
pub struct Store {
    objects: BTreeMap<ObjectKey, Value>,
    dir: Option<PathBuf>,
}

impl Store {
    /// An empty store, persisted under `dir` when given (existing objects are loaded).
    /// Returns the store and the highest resourceVersion found.
    pub fn open(dir: Option<&Path>) -> anyhow::Result<(Self, u64)> {
        let mut store = Store {
            objects: BTreeMap::new(),
            dir: dir.map(Path::to_path_buf),
        };
        let mut max_rv = 0;
        let Some(dir) = dir else {
            return Ok((store, 0));
        };
        let root = dir.join("objects");
        std::fs::create_dir_all(&root)
            .with_context(|| format!("creating state directory {}", root.display()))?;
        if let Ok(text) = std::fs::read_to_string(dir.join("resourceVersion")) {
            max_rv = text.trim().parse().unwrap_or(0);
        }
        for group in read_dir(&root)? {
            for resource in read_dir(&group)? {
                for ns in read_dir(&resource)? {
                    for file in read_dir(&ns)? {
                        let text = std::fs::read_to_string(&file)
                            .with_context(|| format!("reading {}", file.display()))?;
                        let obj: Value = serde_json::from_str(&text).with_context(|| {
                            format!(
                                "parsing {}; delete it or the state directory",
                                file.display()
                            )
                        })?;
                        let name = |p: &Path| {
                            p.file_name()
                                .map(|n| n.to_string_lossy().into_owned())
                                .unwrap_or_default()
                        };
                        let g = name(&group);
                        let key = ObjectKey {
                            group: if g == "core" { String::new() } else { g },
                            resource: name(&resource),
                            namespace: if name(&ns) == "_" {
                                String::new()
                            } else {
                                name(&ns)
                            },
                            name: obj
                                .pointer("/metadata/name")
                                .and_then(Value::as_str)
                                .unwrap_or_default()
                                .to_string(),
                        };
                        if let Some(rv) = obj
                            .pointer("/metadata/resourceVersion")
                            .and_then(Value::as_str)
                            .and_then(|r| r.parse().ok())
                        {
                            max_rv = max_rv.max(rv);
                        }
                        store.objects.insert(key, obj);
                    }
                }
            }
        }
        Ok((store, max_rv))
    }

    fn path(&self, key: &ObjectKey) -> Option<PathBuf> {
        let dir = self.dir.as_ref()?;
        let group = if key.group.is_empty() {
            "core"
        } else {
            &key.group
        };
        let ns = if key.namespace.is_empty() {
            "_"
        } else {
            &key.namespace
        };
        Some(
            dir.join("objects")
                .join(group)
                .join(&key.resource)
                .join(ns)
                .join(format!("{}.json", key.name)),
        )
    }

    /// The object at `key`.
    pub fn get(&self, key: &ObjectKey) -> Option<&Value> {
        self.objects.get(key)
    }

    /// Stores an object (and persists it with the current resourceVersion).
    pub fn put(&mut self, key: ObjectKey, obj: Value, rv: u64) -> anyhow::Result<()> {
        if let Some(path) = self.path(&key) {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            write_atomic(&path, &serde_json::to_vec(&obj)?)?;
            self.write_rv(rv)?;
        }
        self.objects.insert(key, obj);
        Ok(())
    }

    /// Removes an object.
    pub fn remove(&mut self, key: &ObjectKey, rv: u64) -> anyhow::Result<Option<Value>> {
        if let Some(path) = self.path(key) {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("removing {}", path.display())),
            }
            self.write_rv(rv)?;
        }
        Ok(self.objects.remove(key))
    }

    fn write_rv(&self, rv: u64) -> anyhow::Result<()> {
        if let Some(dir) = &self.dir {
            write_atomic(&dir.join("resourceVersion"), rv.to_string().as_bytes())?;
        }
        Ok(())
    }

    /// Objects of one resource, optionally in one namespace, in key order, starting strictly
    /// after `after` (a `namespace/name` continue position).
    pub fn range<'a>(
        &'a self,
        group: &'a str,
        resource: &'a str,
        namespace: Option<&'a str>,
        after: Option<(&str, &str)>,
    ) -> impl Iterator<Item = (&'a ObjectKey, &'a Value)> + 'a {
        let start = match after {
            Some((ns, name)) => Bound::Excluded(ObjectKey::new(group, resource, ns, name)),
            None => Bound::Included(ObjectKey::new(group, resource, namespace.unwrap_or(""), "")),
        };
        self.objects
            .range((start, Bound::Unbounded))
            .take_while(move |(k, _)| k.group == group && k.resource == resource)
            .filter(move |(k, _)| namespace.is_none_or(|ns| k.namespace == ns))
    }

    /// Every key in a namespace, across resources.
    pub fn keys_in_namespace(&self, namespace: &str) -> Vec<ObjectKey> {
        self.objects
            .keys()
            .filter(|k| k.namespace == namespace)
            .cloned()
            .collect()
    }

    /// Every stored object.
    pub fn iter(&self) -> impl Iterator<Item = (&ObjectKey, &Value)> {
        self.objects.iter()
    }
}

fn read_dir(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "tmp") {
            continue;
        }
        out.push(path);
    }
    out.sort();
    Ok(out)
}

fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming into {}", path.display()))?;
    Ok(())
}
