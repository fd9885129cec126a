//! The same scenarios through kube::Client: typed APIs, DynamicObject via discovery, and
//! kube-runtime's watcher and await_condition.

mod common;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::discovery::{Discovery, Scope};
use kube::runtime::{WatchStreamExt, wait::await_condition, wait::conditions, watcher};
use kube::{Client, Config, ResourceExt};
use serde_json::json;
use std::time::Duration;
use vbackup_testcluster::TestCluster;

pub async fn client(cluster: &TestCluster) -> Client {
    let kubeconfig = Kubeconfig::from_yaml(cluster.kubeconfig_yaml()).unwrap();
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .unwrap();
    Client::try_from(config).unwrap()
}

fn configmap(name: &str, labels: serde_json::Value) -> ConfigMap {
    serde_json::from_value(
        json!({"metadata": {"name": name, "labels": labels}, "data": {"k": name}}),
    )
    .unwrap()
}

#[tokio::test]
async fn typed_crud_with_selectors_paging_conflicts_and_not_found() {
    let cluster = TestCluster::start().unwrap();
    let client = client(&cluster).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    for (i, tier) in ["a", "b", "c", "d", "e"].iter().enumerate() {
        let labels = if i % 2 == 0 {
            json!({"tier": tier, "even": "yes"})
        } else {
            json!({"tier": tier})
        };
        cms.create(
            &PostParams::default(),
            &configmap(&format!("cm-{i}"), labels),
        )
        .await
        .unwrap();
    }
    let names = |l: Vec<ConfigMap>| l.into_iter().map(|c| c.name_any()).collect::<Vec<_>>();
    let even = cms
        .list(&ListParams::default().labels("even=yes"))
        .await
        .unwrap();
    assert_eq!(names(even.items), ["cm-0", "cm-2", "cm-4"]);
    let some = cms
        .list(&ListParams::default().labels("tier in (b,d),!even"))
        .await
        .unwrap();
    assert_eq!(names(some.items), ["cm-1", "cm-3"]);
    let one = cms
        .list(&ListParams::default().fields("metadata.name=cm-3"))
        .await
        .unwrap();
    assert_eq!(names(one.items), ["cm-3"]);

    // limit/continue pages through everything exactly once.
    let mut seen = Vec::new();
    let mut lp = ListParams::default().labels("tier").limit(2);
    loop {
        let page = cms.list(&lp).await.unwrap();
        assert!(page.items.len() <= 2);
        seen.extend(names(page.items));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => lp = lp.continue_token(&token),
            None => break,
        }
    }
    assert_eq!(seen, ["cm-0", "cm-1", "cm-2", "cm-3", "cm-4"]);

    // A stale resourceVersion is a 409; the current one succeeds.
    let mut cm = cms.get("cm-0").await.unwrap();
    cms.patch(
        "cm-0",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"x": "1"}})),
    )
    .await
    .unwrap();
    cm.data.as_mut().unwrap().insert("y".into(), "2".into());
    let err = cms
        .replace("cm-0", &PostParams::default(), &cm)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 409 && s.reason == "Conflict"),
        "{err:?}"
    );
    let mut fresh = cms.get("cm-0").await.unwrap();
    fresh.data.as_mut().unwrap().insert("y".into(), "2".into());
    let replaced = cms
        .replace("cm-0", &PostParams::default(), &fresh)
        .await
        .unwrap();
    assert_eq!(replaced.data.unwrap()["y"], "2");

    // Server-side apply through kube.
    let applied = cms
        .patch(
            "applied",
            &PatchParams::apply("vbackup-test"),
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied"}, "data": {"a": "1"}})),
        )
        .await
        .unwrap();
    assert_eq!(
        applied.managed_fields()[0].manager.as_deref(),
        Some("vbackup-test")
    );

    cms.delete("cm-1", &DeleteParams::default()).await.unwrap();
    let err = cms.get("cm-1").await.unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 404 && s.reason == "NotFound"),
        "{err:?}"
    );
    let err = cms
        .delete("cm-1", &DeleteParams::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 404),
        "{err:?}"
    );
    assert!(cms.get_opt("cm-1").await.unwrap().is_none());
}

#[tokio::test]
async fn dynamic_objects_through_discovery_include_new_crds() {
    let cluster = TestCluster::start().unwrap();
    let client = client(&cluster).await;
    let k = common::Kubectl::new(cluster.kubeconfig_path());
    let crd: serde_json::Value = serde_saphyr::from_str(common::WIDGET_CRD).unwrap();
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> = Api::all(client.clone());
    let created = crds
        .create(
            &PostParams::default(),
            &serde_json::from_value(crd).unwrap(),
        )
        .await
        .unwrap();
    let established = await_condition(
        crds.clone(),
        "widgets.example.com",
        conditions::is_crd_established(),
    );
    tokio::time::timeout(Duration::from_secs(30), established)
        .await
        .unwrap()
        .unwrap();

    let discovery = Discovery::new(client.clone()).run().await.unwrap();
    let (ar, caps) = discovery
        .groups()
        .flat_map(|g| g.recommended_resources())
        .find(|(ar, _)| ar.kind == "Widget")
        .expect("Widget is discoverable");
    assert_eq!(caps.scope, Scope::Namespaced);
    assert_eq!(
        ar.version, "v1",
        "the storage (and highest priority) version is preferred"
    );
    let widgets: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &ar);
    let w: DynamicObject = serde_json::from_value(json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 1}})).unwrap();
    widgets.create(&PostParams::default(), &w).await.unwrap();
    widgets
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 2}})),
        )
        .await
        .unwrap();
    let got = widgets.get("w").await.unwrap();
    assert_eq!(got.data["spec"]["size"], 2);
    assert_eq!(got.metadata.generation, Some(2));
    widgets
        .patch_status(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"ready": true}})),
        )
        .await
        .unwrap();
    assert_eq!(
        widgets.get("w").await.unwrap().metadata.generation,
        Some(2),
        "status writes keep generation"
    );

    // Built-in kinds resolve the same way.
    let (deploy_ar, _) = discovery
        .resolve_gvk(&kube::api::GroupVersionKind::gvk(
            "apps",
            "v1",
            "Deployment",
        ))
        .unwrap();
    assert_eq!(deploy_ar.plural, "deployments");

    crds.delete("widgets.example.com", &DeleteParams::default())
        .await
        .unwrap();
    let uid = created.metadata.uid.clone().unwrap();
    let gone = await_condition(
        crds.clone(),
        "widgets.example.com",
        conditions::is_deleted(&uid),
    );
    tokio::time::timeout(Duration::from_secs(30), gone)
        .await
        .unwrap()
        .unwrap();
    let discovery = Discovery::new(client.clone()).run().await.unwrap();
    assert!(!discovery.has_group("example.com"));
    let out = k.ok(&["api-resources"]);
    assert!(!out.contains("widgets"));
}

#[tokio::test]
async fn watcher_and_await_condition_see_status_changes() {
    let cluster = TestCluster::start().unwrap();
    let client = client(&cluster).await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let d: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "app", "labels": {"app": "app"}},
        "spec": {"selector": {"matchLabels": {"app": "app"}}, "template": {"metadata": {"labels": {"app": "app"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}
    }))
    .unwrap();
    deployments
        .create(&PostParams::default(), &d)
        .await
        .unwrap();

    let mut applied = watcher(
        deployments.clone(),
        watcher::Config::default().labels("app=app"),
    )
    .applied_objects()
    .boxed();
    let first = applied.try_next().await.unwrap().unwrap();
    assert_eq!(first.name_any(), "app");

    let available = await_condition(deployments.clone(), "app", |d: Option<&Deployment>| {
        d.and_then(|d| d.status.as_ref())
            .and_then(|s| s.available_replicas)
            == Some(1)
    });
    let writer = deployments.clone();
    tokio::spawn(async move {
        writer
            .patch_status(
                "app",
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"replicas": 1, "availableReplicas": 1}})),
            )
            .await
            .unwrap();
    });
    let done = tokio::time::timeout(Duration::from_secs(30), available)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(done.status.unwrap().available_replicas, Some(1));
    let next = tokio::time::timeout(Duration::from_secs(30), applied.try_next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(next.status.unwrap().replicas, Some(1));

    deployments
        .delete("app", &DeleteParams::default())
        .await
        .unwrap();
    let uid = done.metadata.uid.clone().unwrap();
    let gone = await_condition(deployments.clone(), "app", conditions::is_deleted(&uid));
    tokio::time::timeout(Duration::from_secs(30), gone)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn namespace_deletion_through_the_client_terminates_then_disappears() {
    let cluster = TestCluster::start().unwrap();
    let client = client(&cluster).await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "tmp"}})).unwrap(),
        )
        .await
        .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "tmp");
    cms.create(&PostParams::default(), &configmap("inside", json!({})))
        .await
        .unwrap();
    let ns = namespaces.get("tmp").await.unwrap();
    assert_eq!(ns.status.unwrap().phase.as_deref(), Some("Active"));
    namespaces
        .delete("tmp", &DeleteParams::default())
        .await
        .unwrap();
    let uid = ns.metadata.uid.clone().unwrap();
    let gone = await_condition(namespaces.clone(), "tmp", conditions::is_deleted(&uid));
    tokio::time::timeout(Duration::from_secs(30), gone)
        .await
        .unwrap()
        .unwrap();
    assert!(
        cms.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let err = cms
        .create(&PostParams::default(), &configmap("late", json!({})))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 404),
        "{err:?}"
    );
}

#[tokio::test]
async fn watch_resumes_from_a_resource_version_and_reports_deletions() {
    let cluster = TestCluster::start().unwrap();
    let client = client(&cluster).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let list = cms.list(&ListParams::default()).await.unwrap();
    let rv = list.metadata.resource_version.unwrap();
    cms.create(&PostParams::default(), &configmap("w", json!({"a": "1"})))
        .await
        .unwrap();
    cms.patch(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"a": "2"}}})),
    )
    .await
    .unwrap();
    cms.delete("w", &DeleteParams::default()).await.unwrap();
    let events: Vec<_> = cms
        .watch(&kube::api::WatchParams::default().labels("a"), &rv)
        .await
        .unwrap()
        .take(3)
        .try_collect()
        .await
        .unwrap();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| match e {
            kube::api::WatchEvent::Added(_) => "ADDED",
            kube::api::WatchEvent::Modified(_) => "MODIFIED",
            kube::api::WatchEvent::Deleted(_) => "DELETED",
            kube::api::WatchEvent::Bookmark(_) => "BOOKMARK",
            kube::api::WatchEvent::Error(_) => "ERROR",
        })
        .collect();
    assert_eq!(kinds, ["ADDED", "MODIFIED", "DELETED"]);
}

/// A controller plugged in through `ClusterOptions::controllers`: marks every new
/// ConfigMap labelled `stamp=yes` with an annotation, as a real controller would.
struct Stamper;

impl vbackup_testcluster::Controller for Stamper {
    fn name(&self) -> &'static str {
        "stamper"
    }

    fn on_change(
        &self,
        api: &std::sync::Arc<vbackup_testcluster::Api>,
        change: &vbackup_testcluster::api::Change,
    ) {
        let k = &change.key;
        if k.resource != "configmaps" || change.type_ != vbackup_testcluster::api::ChangeType::Added
        {
            return;
        }
        if change
            .object
            .pointer("/metadata/labels/stamp")
            .and_then(|v| v.as_str())
            != Some("yes")
        {
            return;
        }
        let rt = api.resource("", "configmaps").unwrap();
        let mut obj = change.object.clone();
        obj["metadata"]["annotations"] = json!({"stamped-by": "stamper"});
        api.update_now(&rt, Some(&k.namespace), &k.name, obj, self.name(), None)
            .unwrap();
    }

    fn resync(&self, _api: &std::sync::Arc<vbackup_testcluster::Api>) {}
}

#[tokio::test]
async fn plugged_in_controllers_react_to_changes_and_streaming_lists_work() {
    let cluster = TestCluster::start_with(vbackup_testcluster::ClusterOptions {
        controllers: vec![std::sync::Arc::new(Stamper)],
        ..Default::default()
    })
    .unwrap();
    let client = client(&cluster).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    cms.create(&PostParams::default(), &configmap("plain", json!({})))
        .await
        .unwrap();
    cms.create(
        &PostParams::default(),
        &configmap("stamped", json!({"stamp": "yes"})),
    )
    .await
    .unwrap();
    let stamped = await_condition(cms.clone(), "stamped", |c: Option<&ConfigMap>| {
        c.is_some_and(|c| {
            c.annotations()
                .get("stamped-by")
                .is_some_and(|v| v == "stamper")
        })
    });
    let cm = tokio::time::timeout(Duration::from_secs(30), stamped)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(
        cm.managed_fields().last().unwrap().manager.as_deref(),
        Some("stamper")
    );
    assert!(
        cms.get("plain")
            .await
            .unwrap()
            .metadata
            .annotations
            .is_none()
    );

    // kube-runtime's streaming-list mode (sendInitialEvents + bookmarks) sees both objects.
    let mut names: Vec<String> = Vec::new();
    let mut stream = watcher(cms.clone(), watcher::Config::default().streaming_lists()).boxed();
    while let Some(event) = tokio::time::timeout(Duration::from_secs(30), stream.try_next())
        .await
        .unwrap()
        .unwrap()
    {
        match event {
            watcher::Event::InitApply(cm) => names.push(cm.name_any()),
            watcher::Event::InitDone => break,
            _ => {}
        }
    }
    names.sort();
    assert_eq!(names, ["kube-root-ca.crt", "plain", "stamped"]);
}
