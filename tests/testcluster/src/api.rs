//! The API server's storage semantics, independent of HTTP: create/get/list/update/patch/
//! delete with server-owned fields, preconditions, dry runs, finalizers, admission and the
//! change feed that watches and controllers consume.

use crate::admission::{self, AdmissionAttributes, Operation, ServiceEndpoints};
use crate::error::{ApiError, ApiResult};
use crate::managed_fields;
use crate::patch::{self, PatchType, apply};
use crate::registry::Registry;
use crate::resources::ResourceType;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::store::{ObjectKey, Store};
use crate::{defaults, ids, time, validation};
use base64::Engine;
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::broadcast;

/// The finalizer of an object whose dependents are being orphaned.
pub const ORPHAN_FINALIZER: &str = "orphan";

/// How many past changes are kept for watches resuming from a resourceVersion.
const LOG_CAPACITY: usize = 4096;

/// The kind of a change, as watch events name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeType {
    /// Object created.
    Added,
    /// Object updated.
    Modified,
    /// Object removed.
    Deleted,
}

impl ChangeType {
    /// `ADDED`, `MODIFIED`, `DELETED`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeType::Added => "ADDED",
            ChangeType::Modified => "MODIFIED",
            ChangeType::Deleted => "DELETED",
        }
    }
}

/// One committed change.
#[derive(Debug, Clone)]
pub struct Change {
    /// resourceVersion of the change.
    pub rv: u64,
    /// What happened.
    pub type_: ChangeType,
    /// Which object.
    pub key: ObjectKey,
    /// The object after the change (the last state for deletions), at storage version.
    pub object: Value,
    /// The object before the change.
    pub old: Option<Value>,
}

/// What a watch starts from: changes to replay, the live feed, and the resourceVersion
/// the replay reaches.
pub type WatchStart = (Vec<Arc<Change>>, broadcast::Receiver<Arc<Change>>, u64);

/// Options common to writes.
#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// `dryRun=All`.
    pub dry_run: bool,
    /// `fieldManager` (or the one derived from the User-Agent).
    pub field_manager: String,
    /// `force=true` (apply).
    pub force: bool,
    /// `fieldValidation`.
    pub field_validation: crate::pruning::FieldValidation,
}

/// Options of a delete.
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    /// `dryRun=All`.
    pub dry_run: bool,
    /// `Orphan`, `Background` or `Foreground`.
    pub propagation: Option<String>,
    /// `preconditions.uid`.
    pub uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub resource_version: Option<String>,
}

/// Options of a list.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    /// `labelSelector`.
    pub labels: LabelSelector,
    /// `fieldSelector`.
    pub fields: FieldSelector,
    /// `limit` (0 = all).
    pub limit: usize,
    /// `continue` token.
    pub continue_token: Option<String>,
}

/// A page of a list.
#[derive(Debug, Clone)]
pub struct ListPage {
    /// Matching objects at storage version.
    pub items: Vec<Value>,
    /// The list's resourceVersion.
    pub resource_version: u64,
    /// Token for the next page.
    pub continue_token: Option<String>,
    /// Objects left after this page.
    pub remaining: Option<usize>,
}

pub(crate) struct Inner {
    pub store: Store,
    /// Shared with requests in flight; replaced (copy on write) when a CRD changes.
    pub registry: Arc<Registry>,
    pub rv: u64,
    pub log: VecDeque<Arc<Change>>,
    /// Changes at or below this resourceVersion are no longer in the log.
    pub log_floor: u64,
}

/// The API's state and operations; shared by the HTTP layer and controllers.
pub struct Api {
    inner: Mutex<Inner>,
    events: broadcast::Sender<Arc<Change>>,
    endpoints: ServiceEndpoints,
    tokens: crate::auth::tokens::TokenIssuer,
}

fn md_str<'a>(o: &'a Value, field: &str) -> &'a str {
    o.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn io(e: anyhow::Error) -> ApiError {
    ApiError::internal(format!("{e:#}"))
}

/// The key of `name` in `ns` of a resource.
pub fn key_of(rt: &ResourceType, ns: Option<&str>, name: &str) -> ObjectKey {
    ObjectKey::new(
        &rt.group,
        &rt.plural,
        if rt.namespaced {
            ns.unwrap_or_default()
        } else {
            ""
        },
        name,
    )
}

impl Api {
    /// Opens the API over a state directory (in memory when `None`) and creates the
    /// objects every cluster has (namespaces, the `kubernetes` service).
    pub fn open(state_dir: Option<&Path>, endpoints: ServiceEndpoints) -> anyhow::Result<Arc<Api>> {
        let (store, rv) = Store::open(state_dir)?;
        let mut registry = Registry::default();
        for (k, v) in store.iter() {
            if k.group == "apiextensions.k8s.io" && k.resource == "customresourcedefinitions" {
                registry.set_crd(v);
            }
        }
        let (events, _) = broadcast::channel(8192);
        let api = Arc::new(Api {
            inner: Mutex::new(Inner {
                store,
                registry: Arc::new(registry),
                rv,
                log: VecDeque::new(),
                log_floor: rv,
            }),
            events,
            endpoints,
            tokens: crate::auth::tokens::TokenIssuer::open(state_dir)?,
        });
        api.bootstrap()?;
        Ok(api)
    }

    /// Where webhooks' `clientConfig.service` references go.
    pub fn service_endpoints(&self) -> &ServiceEndpoints {
        &self.endpoints
    }

    fn bootstrap(&self) -> anyhow::Result<()> {
        let ns_rt = self
            .resource("", "namespaces")
            .ok_or_else(|| anyhow::anyhow!("no namespaces type"))?;
        let svc_rt = self
            .resource("", "services")
            .ok_or_else(|| anyhow::anyhow!("no services type"))?;
        let opts = WriteOptions {
            field_manager: "kube-apiserver".into(),
            ..Default::default()
        };
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            if self.get(&ns_rt, None, ns).is_err() {
                let obj =
                    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
                self.create_now(&ns_rt, None, obj, &opts)
                    .map_err(|e| anyhow::anyhow!(e.message))?;
            }
        }
        if self.get(&svc_rt, Some("default"), "kubernetes").is_err() {
            let obj = json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "kubernetes", "namespace": "default", "labels": {"component": "apiserver", "provider": "kubernetes"}},
                "spec": {"clusterIP": "10.96.0.1", "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]}});
            let mut obj = obj;
            defaults::apply(&svc_rt, &mut obj);
            self.create_now(&svc_rt, Some("default"), obj, &opts)
                .map_err(|e| anyhow::anyhow!(e.message))?;
        }
        for (group, plural, obj) in crate::bootstrap::system_objects() {
            let rt = self
                .resource(group, plural)
                .ok_or_else(|| anyhow::anyhow!("no {plural} type"))?;
            let name = md_str(&obj, "name").to_string();
            let ns = md_str(&obj, "namespace").to_string();
            let ns = (!ns.is_empty()).then_some(ns.as_str());
            match self.get(&rt, ns, &name) {
                Err(_) => {
                    self.create_now(&rt, ns, obj, &opts)
                        .map_err(|e| anyhow::anyhow!(e.message))?;
                }
                Ok(existing) => {
                    if let Some(new) = crate::bootstrap::reconciled(&existing, &obj) {
                        self.update_now(&rt, ns, &name, new, "kube-apiserver", None)
                            .map_err(|e| anyhow::anyhow!(e.message))?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Signs and verifies ServiceAccount tokens.
    pub fn tokens(&self) -> &crate::auth::tokens::TokenIssuer {
        &self.tokens
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        match self.inner.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// A snapshot of the servable resource types.
    pub fn registry(&self) -> Arc<Registry> {
        self.lock().registry.clone()
    }

    /// The type of `group`/`plural`, if served.
    pub fn resource(&self, group: &str, plural: &str) -> Option<ResourceType> {
        self.lock().registry.find_resource(group, plural).cloned()
    }

    /// The newest resourceVersion.
    pub fn current_rv(&self) -> u64 {
        self.lock().rv
    }

    /// Subscribes to every future change.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.events.subscribe()
    }

    /// For a watch: the changes to replay (synthetic ADDED for the current state when
    /// `from` is `None`, else the logged changes after `from`), a subscription for later
    /// ones, and the resourceVersion the replay reaches.
    pub fn watch_begin(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        from: Option<u64>,
    ) -> ApiResult<WatchStart> {
        let inner = self.lock();
        let rx = self.events.subscribe();
        let replay: Vec<Arc<Change>> = match from {
            None => inner
                .store
                .range(&rt.group, &rt.plural, ns, None)
                .map(|(k, v)| {
                    Arc::new(Change {
                        rv: md_str(v, "resourceVersion").parse().unwrap_or(0),
                        type_: ChangeType::Added,
                        key: k.clone(),
                        object: v.clone(),
                        old: None,
                    })
                })
                .collect(),
            Some(rv) if rv < inner.log_floor => {
                return Err(ApiError::gone(format!(
                    "too old resource version: {rv} ({})",
                    inner.log_floor + 1
                )));
            }
            Some(rv) => inner
                .log
                .iter()
                .filter(|c| c.rv > rv && c.key.group == rt.group && c.key.resource == rt.plural)
                .filter(|c| ns.is_none_or(|n| c.key.namespace == n))
                .cloned()
                .collect(),
        };
        Ok((replay, rx, inner.rv))
    }

    /// Reads one object (storage version).
    pub fn get(&self, rt: &ResourceType, ns: Option<&str>, name: &str) -> ApiResult<Value> {
        self.lock()
            .store
            .get(&key_of(rt, ns, name))
            .cloned()
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))
    }

    /// Lists objects with selectors and paging.
    pub fn list(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        opts: &ListOptions,
    ) -> ApiResult<ListPage> {
        let inner = self.lock();
        let after = match &opts.continue_token {
            Some(t) => Some(decode_continue(t)?),
            None => None,
        };
        let mut items = Vec::new();
        let mut last: Option<(String, String)> = None;
        let mut remaining = 0usize;
        let mut more = false;
        let ns_filter = if rt.namespaced { ns } else { None };
        for (k, v) in inner.store.range(
            &rt.group,
            &rt.plural,
            ns_filter,
            after.as_ref().map(|(n, m)| (n.as_str(), m.as_str())),
        ) {
            if !opts.labels.matches(v) || !opts.fields.matches(v) {
                continue;
            }
            if opts.limit > 0 && items.len() >= opts.limit {
                more = true;
                remaining += 1;
                continue;
            }
            last = Some((k.namespace.clone(), k.name.clone()));
            items.push(v.clone());
        }
        let continue_token = match (more, last) {
            (true, Some((ns, name))) => Some(encode_continue(inner.rv, &ns, &name)),
            _ => None,
        };
        Ok(ListPage {
            items,
            resource_version: inner.rv,
            remaining: continue_token.as_ref().map(|_| remaining),
            continue_token,
        })
    }

    fn stored_mutating_webhooks(&self) -> Vec<Value> {
        self.lock()
            .store
            .range(
                "admissionregistration.k8s.io",
                "mutatingwebhookconfigurations",
                None,
                None,
            )
            .map(|(_, v)| v.clone())
            .collect()
    }

    async fn admit(
        &self,
        rt: &ResourceType,
        operation: Operation,
        object: Value,
        old: Option<&Value>,
        opts: &WriteOptions,
        subresource: Option<&str>,
    ) -> ApiResult<Value> {
        let configurations = self.stored_mutating_webhooks();
        let namespace = rt
            .namespaced
            .then(|| md_str(&object, "namespace").to_string());
        let namespace_object = match &namespace {
            Some(ns) => self
                .lock()
                .store
                .get(&ObjectKey::new("", "namespaces", "", ns))
                .cloned(),
            // A Namespace is matched against namespaceSelector by its own labels.
            None if rt.group.is_empty() && rt.plural == "namespaces" => Some(object.clone()),
            None => None,
        };
        let user = crate::auth::current_user();
        let mut object = object;
        if operation == Operation::Create
            && subresource.is_none()
            && rt.group.is_empty()
            && rt.plural == "pods"
        {
            admission::serviceaccount::admit(self, &mut object).await?;
        }
        let attributes = AdmissionAttributes {
            operation,
            group: rt.group.clone(),
            version: rt.storage_version().to_string(),
            kind: rt.kind.clone(),
            resource: rt.plural.clone(),
            subresource: subresource.map(str::to_string),
            name: md_str(&object, "name").to_string(),
            namespace,
            dry_run: opts.dry_run,
            username: user.name.clone(),
            groups: user.groups.clone(),
        };
        let mut admitted = admission::run_mutating_webhooks(
            &configurations,
            namespace_object.as_ref(),
            &attributes,
            object,
            old,
            &self.endpoints,
        )
        .await
        .map_err(|e| ApiError::new(e.code, &e.reason, e.message))?;
        // The real server defaults the object again after webhook patches, so what a webhook
        // adds (an injected sidecar container) gets its defaults too.
        defaults::apply(rt, &mut admitted);
        if matches!(operation, Operation::Create | Operation::Update) {
            crate::auth::escalation::check(self, &user, rt, &admitted)?;
        }
        Ok(admitted)
    }

    /// Checks kind/apiVersion/namespace/name of a request body and normalises them.
    fn normalize(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        obj: &mut Value,
        url_name: Option<&str>,
    ) -> ApiResult<()> {
        let Some(map) = obj.as_object_mut() else {
            return Err(ApiError::bad_request(
                "the request body must be a JSON object",
            ));
        };
        if let Some(kind) = map.get("kind").and_then(Value::as_str)
            && !kind.is_empty()
            && kind != rt.kind
        {
            return Err(ApiError::bad_request(format!(
                "the object kind {kind:?} does not match the resource kind {:?} of {}",
                rt.kind,
                rt.qualified()
            )));
        }
        map.insert("kind".into(), json!(rt.kind));
        map.insert(
            "apiVersion".into(),
            json!(rt.api_version(rt.storage_version())),
        );
        let md = map.entry("metadata").or_insert_with(|| json!({}));
        let Some(md) = md.as_object_mut() else {
            return Err(ApiError::bad_request("metadata must be an object"));
        };
        if rt.namespaced {
            let url_ns = ns.unwrap_or_default();
            match md.get("namespace").and_then(Value::as_str) {
                Some(body_ns) if !body_ns.is_empty() && body_ns != url_ns => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                _ => {
                    md.insert("namespace".into(), json!(url_ns));
                }
            }
        } else {
            md.remove("namespace");
        }
        if let Some(url_name) = url_name {
            match md.get("name").and_then(Value::as_str) {
                Some(n) if !n.is_empty() && n != url_name => {
                    return Err(ApiError::bad_request(format!(
                        "the name of the object ({n}) does not match the name on the URL ({url_name})"
                    )));
                }
                _ => {
                    md.insert("name".into(), json!(url_name));
                }
            }
        }
        Ok(())
    }

    fn check_namespace(
        &self,
        inner: &Inner,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
    ) -> ApiResult<()> {
        if !rt.namespaced {
            return Ok(());
        }
        let ns = ns.unwrap_or_default();
        match inner.store.get(&ObjectKey::new("", "namespaces", "", ns)) {
            None => Err(ApiError::not_found("", "namespaces", ns)),
            Some(n) if n.pointer("/metadata/deletionTimestamp").is_some() => {
                Err(ApiError::forbidden(
                    &rt.group,
                    &rt.plural,
                    name,
                    &format!(
                        "unable to create new content in namespace {ns} because it is being terminated"
                    ),
                ))
            }
            Some(_) => Ok(()),
        }
    }

    /// Creates an object: defaulting, admission, server-owned fields, validation.
    pub async fn create(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        mut obj: Value,
        opts: &WriteOptions,
    ) -> ApiResult<Value> {
        self.normalize(rt, ns, &mut obj, None)?;
        if !md_str(&obj, "resourceVersion").is_empty() {
            return Err(ApiError::internal(
                "resourceVersion should not be set on objects to be created",
            ));
        }
        crate::pruning::prune(rt, rt.storage_version(), &mut obj, opts.field_validation)?;
        {
            let inner = self.lock();
            self.check_namespace(&inner, rt, ns, md_str(&obj, "name"))?;
        }
        defaults::apply(rt, &mut obj);
        let obj = self
            .admit(rt, Operation::Create, obj, None, opts, None)
            .await?;
        let mut inner = self.lock();
        self.commit_create(&mut inner, rt, ns, obj, opts, true)
    }

    /// Creates without admission (bootstrap and controllers' own objects).
    pub fn create_now(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        mut obj: Value,
        opts: &WriteOptions,
    ) -> ApiResult<Value> {
        self.normalize(rt, ns, &mut obj, None)?;
        defaults::apply(rt, &mut obj);
        let mut inner = self.lock();
        self.check_namespace(&inner, rt, ns, md_str(&obj, "name"))?;
        self.commit_create(&mut inner, rt, ns, obj, opts, true)
    }

    fn commit_create(
        &self,
        inner: &mut Inner,
        rt: &ResourceType,
        ns: Option<&str>,
        mut obj: Value,
        opts: &WriteOptions,
        record_fields: bool,
    ) -> ApiResult<Value> {
        self.check_namespace(inner, rt, ns, md_str(&obj, "name"))?;
        let generate = md_str(&obj, "generateName").to_string();
        if md_str(&obj, "name").is_empty() && !generate.is_empty() {
            let name = loop {
                let candidate = format!("{generate}{}", ids::name_suffix());
                if inner.store.get(&key_of(rt, ns, &candidate)).is_none() {
                    break candidate;
                }
            };
            obj["metadata"]["name"] = json!(name);
        }
        let uid = ids::uid();
        {
            let md = obj["metadata"]
                .as_object_mut()
                .ok_or_else(|| ApiError::bad_request("metadata must be an object"))?;
            md.insert("uid".into(), json!(uid));
            md.insert("creationTimestamp".into(), json!(time::now()));
            for k in [
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "selfLink",
                "resourceVersion",
            ] {
                md.remove(k);
            }
            if rt.generation {
                md.insert("generation".into(), json!(1));
            } else {
                md.remove("generation");
            }
        }
        if rt.status
            && let Some(m) = obj.as_object_mut()
        {
            m.remove("status");
        }
        defaults::on_create(rt, &mut obj);
        self.prepare_kind_create(inner, rt, &mut obj, &uid)?;
        validation::validate(rt, &obj)?;
        let name = md_str(&obj, "name").to_string();
        let key = key_of(rt, ns, &name);
        if inner.store.get(&key).is_some() {
            return Err(ApiError::already_exists(&rt.group, &rt.plural, &name));
        }
        if record_fields {
            if let Some(md) = obj["metadata"].as_object_mut() {
                md.remove("managedFields");
            }
            managed_fields::record_update(
                rt,
                None,
                &mut obj,
                &opts.field_manager,
                None,
                &rt.api_version(rt.storage_version()),
            );
        }
        if opts.dry_run {
            return Ok(obj);
        }
        self.commit(inner, ChangeType::Added, key, obj, None)
    }

    fn prepare_kind_create(
        &self,
        inner: &Inner,
        rt: &ResourceType,
        obj: &mut Value,
        uid: &str,
    ) -> ApiResult<()> {
        match (rt.group.as_str(), rt.plural.as_str()) {
            ("", "services") => crate::services::allocate(&inner.store, obj, None),
            ("batch", "jobs") => {
                let manual =
                    obj.pointer("/spec/manualSelector").and_then(Value::as_bool) == Some(true);
                if !manual && obj.pointer("/spec/selector").is_none() {
                    let name = md_str(obj, "name").to_string();
                    obj["spec"]["selector"] =
                        json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}});
                    if let Some(t) = obj
                        .pointer_mut("/spec/template")
                        .and_then(Value::as_object_mut)
                    {
                        let md = t.entry("metadata").or_insert_with(|| json!({}));
                        if let Some(md) = md.as_object_mut() {
                            let labels = md.entry("labels").or_insert_with(|| json!({}));
                            if let Some(l) = labels.as_object_mut() {
                                l.insert("batch.kubernetes.io/controller-uid".into(), json!(uid));
                                l.insert("batch.kubernetes.io/job-name".into(), json!(name));
                                l.insert("controller-uid".into(), json!(uid));
                                l.insert("job-name".into(), json!(name));
                            }
                        }
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Replaces an object (PUT), or its status with `subresource = Some("status")`.
    pub async fn update(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        mut obj: Value,
        opts: &WriteOptions,
        subresource: Option<&str>,
    ) -> ApiResult<Value> {
        self.normalize(rt, ns, &mut obj, Some(name))?;
        crate::pruning::prune(rt, rt.storage_version(), &mut obj, opts.field_validation)?;
        defaults::apply(rt, &mut obj);
        let old = self.get(rt, ns, name)?;
        let obj = self
            .admit(rt, Operation::Update, obj, Some(&old), opts, subresource)
            .await?;
        let mut inner = self.lock();
        let current = inner
            .store
            .get(&key_of(rt, ns, name))
            .cloned()
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))?;
        let wanted = md_str(&obj, "resourceVersion");
        if !wanted.is_empty() && wanted != md_str(&current, "resourceVersion") {
            return Err(ApiError::conflict(&rt.group, &rt.plural, name));
        }
        self.commit_update(&mut inner, rt, current, obj, opts, subresource, true)
    }

    /// Patches an object; an apply patch creates it when missing. Returns the object and
    /// whether it was created.
    #[allow(clippy::too_many_arguments)]
    pub async fn patch(
        &self,
        rt: &ResourceType,
        version: &str,
        ns: Option<&str>,
        name: &str,
        ty: PatchType,
        body: &[u8],
        opts: &WriteOptions,
        subresource: Option<&str>,
    ) -> ApiResult<(Value, bool)> {
        if ty == PatchType::Apply && opts.field_manager.is_empty() {
            return Err(ApiError::invalid(
                "meta.k8s.io",
                "PatchOptions",
                "",
                vec![crate::error::Cause {
                    reason: "FieldValueRequired".into(),
                    message: "Required value: is required for apply patch".into(),
                    field: "fieldManager".into(),
                }],
            ));
        }
        for _ in 0..8 {
            let current = self.lock().store.get(&key_of(rt, ns, name)).cloned();
            let (mut new, user_rv) = match (ty, &current) {
                (PatchType::Apply, _) => {
                    let mut applied = apply::parse_body(body)?;
                    self.check_apply_body(rt, &applied, version)?;
                    crate::conversion::convert(rt, &mut applied, version, rt.storage_version());
                    self.normalize(rt, ns, &mut applied, Some(name))?;
                    crate::pruning::prune(
                        rt,
                        rt.storage_version(),
                        &mut applied,
                        opts.field_validation,
                    )?;
                    let req = apply::ApplyRequest {
                        rt,
                        api_version: &rt.api_version(version),
                        manager: &opts.field_manager,
                        force: opts.force,
                        subresource,
                    };
                    let Some(cur) = &current else {
                        if subresource.is_some() {
                            return Err(ApiError::not_found(&rt.group, &rt.plural, name));
                        }
                        let mut obj = apply::apply(&req, None, &applied)?;
                        defaults::apply(rt, &mut obj);
                        {
                            let inner = self.lock();
                            self.check_namespace(&inner, rt, ns, name)?;
                        }
                        let obj = self
                            .admit(rt, Operation::Create, obj, None, opts, None)
                            .await?;
                        let mut inner = self.lock();
                        return match self.commit_create(&mut inner, rt, ns, obj, opts, false) {
                            Err(e) if e.reason == "AlreadyExists" => continue,
                            other => other.map(|o| (o, true)),
                        };
                    };
                    let mut new = apply::apply(&req, Some(cur), &applied)?;
                    new["metadata"]["resourceVersion"] = json!(md_str(cur, "resourceVersion"));
                    (new, false)
                }
                (_, None) => return Err(ApiError::not_found(&rt.group, &rt.plural, name)),
                (_, Some(cur)) => {
                    // Patches are written against the requested version's shape.
                    let mut shown = cur.clone();
                    crate::conversion::convert(rt, &mut shown, rt.storage_version(), version);
                    let mut new = patch::patch_object(rt, &shown, ty, body)?;
                    crate::conversion::convert(rt, &mut new, version, rt.storage_version());
                    crate::pruning::prune(
                        rt,
                        rt.storage_version(),
                        &mut new,
                        opts.field_validation,
                    )?;
                    let user_rv = md_str(&new, "resourceVersion") != md_str(cur, "resourceVersion");
                    (new, user_rv)
                }
            };
            let Some(cur) = current else { continue };
            self.normalize(rt, ns, &mut new, Some(name))?;
            defaults::apply(rt, &mut new);
            let new = self
                .admit(rt, Operation::Update, new, Some(&cur), opts, subresource)
                .await?;
            let mut inner = self.lock();
            let latest = inner
                .store
                .get(&key_of(rt, ns, name))
                .cloned()
                .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))?;
            let wanted = md_str(&new, "resourceVersion").to_string();
            if wanted != md_str(&latest, "resourceVersion") {
                if user_rv {
                    return Err(ApiError::conflict(&rt.group, &rt.plural, name));
                }
                continue;
            }
            let record = ty != PatchType::Apply;
            return self
                .commit_update(&mut inner, rt, latest, new, opts, subresource, record)
                .map(|o| (o, false));
        }
        Err(ApiError::conflict(&rt.group, &rt.plural, name))
    }

    fn check_apply_body(&self, rt: &ResourceType, applied: &Value, version: &str) -> ApiResult<()> {
        let kind = applied
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let api_version = applied
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if kind.is_empty() || api_version.is_empty() {
            return Err(ApiError::bad_request(
                "invalid object type: apiVersion and kind must be set in an apply patch",
            ));
        }
        if api_version != rt.api_version(version) {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({api_version}) does not match the expected API version ({})",
                rt.api_version(version)
            )));
        }
        Ok(())
    }

    /// Updates without admission (controllers).
    pub fn update_now(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        mut obj: Value,
        manager: &str,
        subresource: Option<&str>,
    ) -> ApiResult<Value> {
        self.normalize(rt, ns, &mut obj, Some(name))?;
        let mut inner = self.lock();
        let current = inner
            .store
            .get(&key_of(rt, ns, name))
            .cloned()
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))?;
        let wanted = md_str(&obj, "resourceVersion");
        if !wanted.is_empty() && wanted != md_str(&current, "resourceVersion") {
            return Err(ApiError::conflict(&rt.group, &rt.plural, name));
        }
        let opts = WriteOptions {
            field_manager: manager.to_string(),
            ..Default::default()
        };
        self.commit_update(&mut inner, rt, current, obj, &opts, subresource, true)
    }

    #[allow(clippy::too_many_arguments)]
    fn commit_update(
        &self,
        inner: &mut Inner,
        rt: &ResourceType,
        old: Value,
        new: Value,
        opts: &WriteOptions,
        subresource: Option<&str>,
        record_fields: bool,
    ) -> ApiResult<Value> {
        let mut new = if subresource == Some("status") {
            let mut merged = old.clone();
            merged["status"] = new.get("status").cloned().unwrap_or(Value::Null);
            if merged["status"].is_null()
                && let Some(m) = merged.as_object_mut()
            {
                m.remove("status");
            }
            if let Some(mf) = new.pointer("/metadata/managedFields") {
                merged["metadata"]["managedFields"] = mf.clone();
            }
            merged
        } else {
            let mut n = new;
            if rt.status
                && let Some(m) = n.as_object_mut()
            {
                match old.get("status") {
                    Some(s) => m.insert("status".into(), s.clone()),
                    None => m.remove("status"),
                };
            }
            n
        };
        for field in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ] {
            let md = new["metadata"]
                .as_object_mut()
                .ok_or_else(|| ApiError::bad_request("metadata must be an object"))?;
            match old.get("metadata").and_then(|m| m.get(field)) {
                Some(v) => md.insert(field.into(), v.clone()),
                None => md.remove(field),
            };
        }
        if rt.generation && spec_changed(rt, &old, &new) {
            let g = old
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0)
                + 1;
            new["metadata"]["generation"] = json!(g);
        }
        if subresource.is_none() {
            crate::immutability::check(rt, &old, &new)?;
        }
        if rt.group.is_empty() && rt.plural == "services" {
            crate::services::allocate(&inner.store, &mut new, Some(&old))?;
        }
        validation::validate_update(rt, &new, &old)?;
        if record_fields {
            managed_fields::record_update(
                rt,
                Some(&old),
                &mut new,
                &opts.field_manager,
                subresource,
                &rt.api_version(rt.storage_version()),
            );
        }
        if same_ignoring_bookkeeping(&old, &new) {
            return Ok(old);
        }
        let key = key_of(rt, Some(md_str(&old, "namespace")), md_str(&old, "name"));
        let finalized = new.pointer("/metadata/deletionTimestamp").is_some()
            && new
                .pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .is_none_or(Vec::is_empty)
            && !(rt.group.is_empty() && rt.plural == "namespaces" && has_spec_finalizers(&new));
        if opts.dry_run {
            return Ok(new);
        }
        if finalized {
            return self.commit(inner, ChangeType::Deleted, key, new, Some(old));
        }
        self.commit(inner, ChangeType::Modified, key, new, Some(old))
    }

    /// Deletes an object. Returns the object and whether it is gone (`false` while
    /// finalizers or namespace termination are pending).
    pub fn delete(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        opts: &DeleteOptions,
    ) -> ApiResult<(Value, bool)> {
        let mut inner = self.lock();
        let key = key_of(rt, ns, name);
        let current = inner
            .store
            .get(&key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))?;
        if let Some(uid) = &opts.uid
            && uid != md_str(&current, "uid")
        {
            return Err(ApiError::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} \"{name}\": Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    rt.qualified(),
                    md_str(&current, "uid")
                ),
            ));
        }
        if let Some(rv) = &opts.resource_version
            && rv != md_str(&current, "resourceVersion")
        {
            return Err(ApiError::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} \"{name}\": Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                    rt.qualified(),
                    md_str(&current, "resourceVersion")
                ),
            ));
        }
        let is_namespace = rt.group.is_empty() && rt.plural == "namespaces";
        if is_namespace && ["default", "kube-system", "kube-public"].contains(&name) {
            return Err(ApiError::forbidden(
                "",
                "namespaces",
                name,
                "this namespace may not be deleted",
            ));
        }
        if current.pointer("/metadata/deletionTimestamp").is_some() {
            return Ok((current, false));
        }
        let has_finalizers = current
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        // Orphaning goes through the `orphan` finalizer: the garbage collector removes the
        // owner references from the dependents, then the finalizer.
        let orphan = opts.propagation.as_deref() == Some("Orphan");
        if is_namespace || has_finalizers || orphan {
            let mut new = current.clone();
            new["metadata"]["deletionTimestamp"] = json!(time::now());
            new["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            if orphan {
                defaults::add_finalizer(&mut new, ORPHAN_FINALIZER);
            }
            if is_namespace {
                new["status"]["phase"] = json!("Terminating");
            }
            if opts.dry_run {
                return Ok((new, false));
            }
            let out = self.commit(&mut inner, ChangeType::Modified, key, new, Some(current))?;
            return Ok((out, false));
        }
        if opts.dry_run {
            return Ok((current, true));
        }
        let out = self.commit(
            &mut inner,
            ChangeType::Deleted,
            key,
            current.clone(),
            Some(current),
        )?;
        Ok((out, true))
    }

    /// Removes an object outright (controllers finishing a deletion).
    pub fn remove_now(&self, key: &ObjectKey) -> ApiResult<()> {
        let mut inner = self.lock();
        if let Some(old) = inner.store.get(key).cloned() {
            self.commit(
                &mut inner,
                ChangeType::Deleted,
                key.clone(),
                old.clone(),
                Some(old),
            )?;
        }
        Ok(())
    }

    /// Every key in a namespace.
    pub fn keys_in_namespace(&self, ns: &str) -> Vec<ObjectKey> {
        self.lock().store.keys_in_namespace(ns)
    }

    /// The object at a key.
    pub fn get_key(&self, key: &ObjectKey) -> Option<Value> {
        self.lock().store.get(key).cloned()
    }

    /// Keys of all objects of a resource.
    pub fn keys_of(&self, group: &str, resource: &str) -> Vec<ObjectKey> {
        self.lock()
            .store
            .range(group, resource, None, None)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Keys of every object with an owner reference to `uid`.
    pub fn dependents_of(&self, uid: &str) -> Vec<ObjectKey> {
        self.lock()
            .store
            .iter()
            .filter(|(_, v)| owner_uids(v).iter().any(|u| u == uid))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Whether any object has this uid.
    pub fn uid_exists(&self, uid: &str) -> bool {
        self.lock()
            .store
            .iter()
            .any(|(_, v)| md_str(v, "uid") == uid)
    }

    fn commit(
        &self,
        inner: &mut Inner,
        type_: ChangeType,
        key: ObjectKey,
        mut obj: Value,
        old: Option<Value>,
    ) -> ApiResult<Value> {
        inner.rv += 1;
        let rv = inner.rv;
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        let is_crd =
            key.group == "apiextensions.k8s.io" && key.resource == "customresourcedefinitions";
        match type_ {
            ChangeType::Deleted => {
                inner.store.remove(&key, rv).map_err(io)?;
                if is_crd {
                    Arc::make_mut(&mut inner.registry).remove_crd(&obj);
                    self.drop_custom_objects(inner, &obj)?;
                }
            }
            _ => {
                inner.store.put(key.clone(), obj.clone(), rv).map_err(io)?;
                if is_crd {
                    Arc::make_mut(&mut inner.registry).set_crd(&obj);
                }
            }
        }
        self.publish(
            inner,
            Change {
                rv,
                type_,
                key,
                object: obj.clone(),
                old,
            },
        );
        Ok(obj)
    }

    fn drop_custom_objects(&self, inner: &mut Inner, crd: &Value) -> ApiResult<()> {
        let group = crd
            .pointer("/spec/group")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let plural = crd
            .pointer("/spec/names/plural")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let keys: Vec<ObjectKey> = inner
            .store
            .range(&group, &plural, None, None)
            .map(|(k, _)| k.clone())
            .collect();
        for k in keys {
            if let Some(old) = inner.store.get(&k).cloned() {
                inner.rv += 1;
                let rv = inner.rv;
                inner.store.remove(&k, rv).map_err(io)?;
                let mut obj = old.clone();
                obj["metadata"]["resourceVersion"] = json!(rv.to_string());
                self.publish(
                    inner,
                    Change {
                        rv,
                        type_: ChangeType::Deleted,
                        key: k,
                        object: obj,
                        old: Some(old),
                    },
                );
            }
        }
        Ok(())
    }

    fn publish(&self, inner: &mut Inner, change: Change) {
        let change = Arc::new(change);
        inner.log.push_back(change.clone());
        while inner.log.len() > LOG_CAPACITY {
            if let Some(evicted) = inner.log.pop_front() {
                inner.log_floor = evicted.rv;
            }
        }
        // No receivers is fine: nobody is watching.
        let _ = self.events.send(change);
    }
}

fn has_spec_finalizers(ns: &Value) -> bool {
    ns.pointer("/spec/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty())
}

/// UIDs of an object's owners.
pub fn owner_uids(v: &Value) -> Vec<String> {
    v.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| r.get("uid").and_then(Value::as_str).map(str::to_string))
        .collect()
}

fn spec_changed(rt: &ResourceType, old: &Value, new: &Value) -> bool {
    if rt.custom
        || rt.plural == "mutatingwebhookconfigurations"
        || rt.plural == "validatingwebhookconfigurations"
    {
        let strip = |v: &Value| {
            let mut v = v.clone();
            if let Some(m) = v.as_object_mut() {
                m.remove("metadata");
                m.remove("status");
            }
            v
        };
        return strip(old) != strip(new);
    }
    old.get("spec") != new.get("spec")
}

fn same_ignoring_bookkeeping(old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(md) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            md.remove("resourceVersion");
            if let Some(Value::Array(entries)) = md.get_mut("managedFields") {
                for e in entries.iter_mut().filter_map(Value::as_object_mut) {
                    e.remove("time");
                }
            }
        }
        v
    };
    strip(old) == strip(new)
}

fn encode_continue(rv: u64, ns: &str, name: &str) -> String {
    let raw = json!({"rv": rv, "ns": ns, "name": name}).to_string();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn decode_continue(token: &str) -> ApiResult<(String, String)> {
    let bad = || {
        ApiError::bad_request(format!(
            "invalid continue token {token:?}: start the list again without it"
        ))
    };
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let ns = v.get("ns").and_then(Value::as_str).ok_or_else(bad)?;
    let name = v.get("name").and_then(Value::as_str).ok_or_else(bad)?;
    Ok((ns.to_string(), name.to_string()))
}
