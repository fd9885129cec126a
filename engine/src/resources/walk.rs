//! The I/O half of an object backup: lists what the filters select, page by page, asks
//! [`decide`] about each object, writes the kept ones into the archive and fetches what
//! they need.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::api::{Api, DynamicObject, ListParams};
use serde_json::Value;
use tokio::io::DuplexStream;

use super::Progress;
use super::archive::ArchiveWriter;
use super::decide::{self, Decision, Follow, Needs};
use super::deps::{self, kinds};
use super::discovery::DiscoveredTypes;
use super::request::BackupRequest;
use super::sanitize::sanitize;
use super::selector::LabelSelector;
use super::skip;
use super::types::{ObjectRef, ResourceType};
use crate::backups::itemlog::ItemLog;
use crate::backups::record::{SkippedSummary, Tally, add_skipped};
use crate::cluster::list::{Pages, list_all, list_names};
use crate::{Error, Result};

/// The namespaces a backup covers, and the ones it names that do not exist.
pub(super) struct Namespaces {
    pub(super) selected: Vec<String>,
    pub(super) missing: Vec<String>,
}

/// The cluster's namespaces that `request` selects.
pub(super) async fn selected_namespaces(
    client: &Client,
    request: &BackupRequest,
) -> Result<Namespaces> {
    let api: Api<Namespace> = Api::all(client.clone());
    let mut names = list_names(&api, ListParams::default())
        .await
        .map_err(Error::kube("cannot list namespaces"))?;
    let missing = request
        .namespaces
        .exact_names()
        .unwrap_or_default()
        .into_iter()
        .filter(|n| !names.iter().any(|x| x == n))
        .map(String::from)
        .collect();
    names.retain(|n| request.namespaces.matches(n));
    names.sort();
    Ok(Namespaces {
        selected: names,
        missing,
    })
}

/// One backup's walk through the cluster, and what it found so far.
pub(super) struct Walk<'a> {
    client: &'a Client,
    request: &'a BackupRequest,
    selector: &'a LabelSelector,
    discovered: &'a DiscoveredTypes,
    follow: Follow,
    pub(super) archive: ArchiveWriter<DuplexStream>,
    pub(super) log: ItemLog,
    pub(super) tally: Tally,
    pub(super) skipped: Vec<SkippedSummary>,
    /// Objects written that a dependency could name again (see `remembers`).
    seen: HashSet<ObjectRef>,
    pending: BTreeSet<ObjectRef>,
    pod_labels: BTreeMap<String, Vec<BTreeMap<String, String>>>,
    service_accounts: BTreeSet<(String, String)>,
    crds: HashSet<String>,
    items: u64,
}

impl<'a> Walk<'a> {
    pub(super) fn new(
        client: &'a Client,
        request: &'a BackupRequest,
        selector: &'a LabelSelector,
        discovered: &'a DiscoveredTypes,
        archive: ArchiveWriter<DuplexStream>,
    ) -> Self {
        Walk {
            client,
            request,
            selector,
            discovered,
            follow: Follow::of(request, selector),
            archive,
            log: ItemLog::new(),
            tally: Tally::default(),
            skipped: Vec::new(),
            seen: HashSet::new(),
            pending: BTreeSet::new(),
            pod_labels: BTreeMap::new(),
            service_accounts: BTreeSet::new(),
            crds: HashSet::new(),
            items: 0,
        }
    }

    /// True when a written object must be remembered so a dependency does not write it
    /// twice: only objects a dependency can name, so memory follows the selection's
    /// dependencies, not the size of the namespaces.
    fn remembers(&self, r: &ObjectRef) -> bool {
        match r.namespace {
            None => self.follow.dependencies(),
            Some(_) => self.follow.namespaced,
        }
    }

    /// Lists every selected type in `namespaces`, then adds what the kept objects need.
    pub(super) async fn run(
        &mut self,
        namespaces: &[String],
        progress: &(dyn Fn(&Progress) + Send + Sync),
    ) -> Result<()> {
        if self.follow.cluster {
            self.crds = self.list_crd_names().await?;
        }
        let types: Vec<&ResourceType> = self
            .discovered
            .types
            .iter()
            .filter(|t| self.request.resources.matches(t))
            .collect();
        for rt in types {
            let gr = rt.group_resource();
            if let Some(reason) = skip::skipped_type(&gr)
                && !self.request.resources.explicitly_includes(rt)
            {
                self.skipped.push(SkippedSummary {
                    resource: gr,
                    reason: reason.into(),
                    count: 0,
                });
                continue;
            }
            if rt.namespaced {
                match self.request.namespaces.exact_names() {
                    Some(_) => {
                        for ns in namespaces {
                            let api =
                                Api::namespaced_with(self.client.clone(), ns, &rt.api_resource());
                            self.list_type(rt, api, Some(ns.as_str()), progress).await?;
                        }
                    }
                    None => {
                        let api = Api::all_with(self.client.clone(), &rt.api_resource());
                        self.list_type(rt, api, None, progress).await?;
                    }
                }
            } else if gr == kinds::NAMESPACES {
                // With a selector, only the namespaces of taken objects (added in `take`).
                if self.selector.is_empty() {
                    for ns in namespaces {
                        self.pending
                            .insert(ObjectRef::cluster(kinds::NAMESPACES, ns));
                    }
                }
            } else if self.request.takes_all_cluster_resources() {
                let api = Api::all_with(self.client.clone(), &rt.api_resource());
                self.list_type(rt, api, None, progress).await?;
            }
        }
        if self.follow.dependencies() {
            self.add_matching_services(progress).await?;
            self.add_bindings(progress).await?;
        }
        self.resolve_pending(progress).await
    }

    async fn list_type(
        &mut self,
        rt: &ResourceType,
        api: Api<DynamicObject>,
        namespace: Option<&str>,
        progress: &(dyn Fn(&Progress) + Send + Sync),
    ) -> Result<()> {
        let gr = rt.group_resource();
        let mut lp = ListParams::default();
        if !self.selector.is_empty() {
            lp = lp.labels(self.selector.as_str());
        }
        let mut pages = Pages::new(lp);
        let mut listed = 0usize;
        while let Some(lp) = pages.next() {
            let page = match api.list(lp).await {
                Ok(page) => page,
                Err(e) => {
                    tracing::warn!(resource = %gr, namespace, error = %e, "cannot list; recorded as an item error");
                    let at = ObjectRef {
                        resource: gr.clone(),
                        namespace: namespace.map(String::from),
                        name: "*".into(),
                    };
                    self.tally.error(&at, format!("cannot list {gr}: {e}"));
                    self.log.record(&at, "failed", Some(&e.to_string()));
                    return Ok(());
                }
            };
            pages.advance(&page.metadata);
            listed += page.items.len();
            for item in page.items {
                if let Some(ns) = item.metadata.namespace.as_deref()
                    && !self.request.namespaces.matches(ns)
                {
                    continue;
                }
                self.take(rt, typed_json(rt, &item)?, progress).await?;
            }
        }
        tracing::debug!(resource = %gr, namespace, objects = listed, "listed");
        Ok(())
    }

    /// Decides about one object and writes it to the archive when it is kept.
    async fn take(
        &mut self,
        rt: &ResourceType,
        mut object: Value,
        progress: &(dyn Fn(&Progress) + Send + Sync),
    ) -> Result<()> {
        let r = decide::object_ref(rt, &object);
        if self.remembers(&r) && !self.seen.insert(r.clone()) {
            return Ok(());
        }
        let gr = r.resource.clone();
        match decide::decide(rt, &object, self.follow, &self.crds) {
            Decision::Excluded(reason) => {
                self.log.record(&r, "excluded", Some(reason));
                return Ok(());
            }
            Decision::Skipped(reason) => {
                add_skipped(&mut self.skipped, &gr, reason);
                self.log.record(&r, "skipped", Some(reason));
                return Ok(());
            }
            Decision::Keep(needs) => self.note(needs),
        }
        sanitize(&mut object, rt.has_status_subresource);
        let json = serde_json::to_vec(&object).map_err(|e| Error::Internal(e.to_string()))?;
        self.archive.add(&r, &json).await?;
        self.tally.count(&gr);
        self.log.record(&r, "backed-up", None);
        self.items += 1;
        progress(&Progress {
            items: self.items,
            resource: gr,
        });
        Ok(())
    }

    /// Remembers what a kept object needs, for the steps after the listing.
    fn note(&mut self, needs: Needs) {
        let Needs {
            objects,
            pod_labels,
            service_accounts,
        } = needs;
        for dep in objects {
            if !self.seen.contains(&dep) {
                self.pending.insert(dep);
            }
        }
        if let Some((ns, labels)) = pod_labels {
            self.pod_labels.entry(ns).or_default().push(labels);
        }
        self.service_accounts.extend(service_accounts);
    }

    async fn list_crd_names(&self) -> Result<HashSet<String>> {
        let Some(rt) = self.discovered.by_group_resource(kinds::CRDS) else {
            return Ok(HashSet::new());
        };
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &rt.api_resource());
        let names = list_names(&api, ListParams::default())
            .await
            .map_err(Error::kube("cannot list CustomResourceDefinitions"))?;
        Ok(names.into_iter().collect())
    }

    /// With a selector, the Services whose selector picks the selected pods.
    async fn add_matching_services(
        &mut self,
        progress: &(dyn Fn(&Progress) + Send + Sync),
    ) -> Result<()> {
        let Some(rt) = self.discovered.by_group_resource(kinds::SERVICES).cloned() else {
            return Ok(());
        };
        if !self.follow.namespaced || !self.request.resources.matches(&rt) {
            return Ok(());
        }
        let pod_labels = std::mem::take(&mut self.pod_labels);
        for (ns, label_sets) in &pod_labels {
            let api: Api<DynamicObject> =
                Api::namespaced_with(self.client.clone(), ns, &rt.api_resource());
            for service in list_typed(&api, &rt).await? {
                if label_sets
                    .iter()
                    .any(|l| deps::service_selects(&service, l))
                {
                    self.take(&rt, service, progress).await?;
                }
            }
        }
        Ok(())
    }

    /// The RoleBindings (with a selector) and ClusterRoleBindings (`auto`) naming the
    /// selected service accounts.
    async fn add_bindings(&mut self, progress: &(dyn Fn(&Progress) + Send + Sync)) -> Result<()> {
        let accounts = self.service_accounts.clone();
        if accounts.is_empty() {
            return Ok(());
        }
        let names = |b: &Value| {
            accounts
                .iter()
                .any(|(ns, sa)| deps::binding_names_service_account(b, ns, sa))
        };
        if self.follow.namespaced
            && let Some(rt) = self
                .discovered
                .by_group_resource(kinds::ROLE_BINDINGS)
                .cloned()
            && self.request.resources.matches(&rt)
        {
            let namespaces: BTreeSet<&String> = accounts.iter().map(|(ns, _)| ns).collect();
            for ns in namespaces {
                let api: Api<DynamicObject> =
                    Api::namespaced_with(self.client.clone(), ns, &rt.api_resource());
                for binding in list_typed(&api, &rt).await? {
                    if names(&binding) {
                        self.take(&rt, binding, progress).await?;
                    }
                }
            }
        }
        if self.follow.cluster
            && let Some(rt) = self
                .discovered
                .by_group_resource(kinds::CLUSTER_ROLE_BINDINGS)
                .cloned()
            && self.request.resources.matches(&rt)
        {
            let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &rt.api_resource());
            for binding in list_typed(&api, &rt).await? {
                if names(&binding) {
                    self.take(&rt, binding, progress).await?;
                }
            }
        }
        Ok(())
    }

    /// Fetches every referenced object not yet written, following chains (claim → volume
    /// → storage class, binding → role).
    async fn resolve_pending(
        &mut self,
        progress: &(dyn Fn(&Progress) + Send + Sync),
    ) -> Result<()> {
        while let Some(r) = self.pending.pop_first() {
            if self.seen.contains(&r) {
                continue;
            }
            let Some(rt) = self.discovered.by_group_resource(&r.resource).cloned() else {
                continue;
            };
            if !self.request.resources.matches(&rt) {
                self.log.record(
                    &r,
                    "excluded",
                    Some("needed by a selected object, but its type is excluded"),
                );
                continue;
            }
            let api: Api<DynamicObject> = match &r.namespace {
                Some(ns) => Api::namespaced_with(self.client.clone(), ns, &rt.api_resource()),
                None => Api::all_with(self.client.clone(), &rt.api_resource()),
            };
            match api.get_opt(&r.name).await {
                Ok(Some(item)) => self.take(&rt, typed_json(&rt, &item)?, progress).await?,
                Ok(None) if r.resource == kinds::NAMESPACES => {}
                Ok(None) => {
                    self.tally.warn(format!(
                        "{r} is referenced by a selected object but does not exist"
                    ));
                    self.log
                        .record(&r, "missing", Some("referenced by a selected object"));
                }
                Err(e) => {
                    self.tally.error(&r, format!("cannot read {r}: {e}"));
                    self.log.record(&r, "failed", Some(&e.to_string()));
                }
            }
        }
        Ok(())
    }
}

/// Every object of a (small) type in one scope, as JSON with its type set.
async fn list_typed(api: &Api<DynamicObject>, rt: &ResourceType) -> Result<Vec<Value>> {
    list_all(api, ListParams::default())
        .await
        .map_err(Error::kube(format!("cannot list {}", rt.group_resource())))?
        .iter()
        .map(|item| typed_json(rt, item))
        .collect()
}

/// A listed object as JSON with its `apiVersion` and `kind` (lists leave them out).
fn typed_json(rt: &ResourceType, item: &DynamicObject) -> Result<Value> {
    let mut object = serde_json::to_value(item).map_err(|e| Error::Internal(e.to_string()))?;
    object["apiVersion"] = Value::String(rt.api_version());
    object["kind"] = Value::String(rt.kind.clone());
    Ok(object)
}
