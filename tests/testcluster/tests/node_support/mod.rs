//! Helpers for the node tests: a cluster with `testnode`, and waiting through real
//! `kubectl wait` (a watch), never through sleeps.
#![allow(dead_code)]

use crate::common::Kubectl;
use std::path::PathBuf;
use vbackup_testcluster::node::{ImageMapping, NodeOptions};
use vbackup_testcluster::{ClusterOptions, TestCluster};

/// A cluster whose node runs images starting with each prefix as the given binary.
pub fn node_cluster(images: &[(&str, &str)], snapshot_crds: bool) -> (TestCluster, Kubectl) {
    node_cluster_with(images, snapshot_crds, false)
}

/// Like `node_cluster`, optionally over HTTPS.
pub fn node_cluster_with(
    images: &[(&str, &str)],
    snapshot_crds: bool,
    tls: bool,
) -> (TestCluster, Kubectl) {
    cluster_of(images, snapshot_crds, tls, 1)
}

/// A cluster of `nodes` nodes (`testnode`, `testnode-2`…).
pub fn nodes_cluster(nodes: usize, snapshot_crds: bool) -> (TestCluster, Kubectl) {
    cluster_of(
        &[("vbackup.test/shell", "/bin/sh")],
        snapshot_crds,
        false,
        nodes,
    )
}

fn cluster_of(
    images: &[(&str, &str)],
    snapshot_crds: bool,
    tls: bool,
    nodes: usize,
) -> (TestCluster, Kubectl) {
    let image_map = images
        .iter()
        .map(|(p, b)| ImageMapping::parse(&format!("{p}={b}")).unwrap())
        .collect();
    let c = TestCluster::start_with(ClusterOptions {
        tls,
        node: Some(NodeOptions {
            image_map,
            snapshot_crds,
            nodes,
            ..Default::default()
        }),
        ..Default::default()
    })
    .unwrap();
    let k = Kubectl::new(c.kubeconfig_path());
    (c, k)
}

/// `kubectl wait` for a condition expression (e.g. `jsonpath={.status.phase}=Bound`).
pub fn wait(k: &Kubectl, ns: &str, what: &str, condition: &str) {
    k.ok(&[
        "-n",
        ns,
        "wait",
        what,
        &format!("--for={condition}"),
        "--timeout=60s",
    ]);
}

/// Waits until a pod reports a phase.
pub fn wait_phase(k: &Kubectl, ns: &str, pod: &str, phase: &str) {
    wait(
        k,
        ns,
        &format!("pod/{pod}"),
        &format!("jsonpath={{.status.phase}}={phase}"),
    );
}

/// The data directory of a bound claim, as the node keeps it.
pub fn claim_dir(c: &TestCluster, ns: &str, claim: &str) -> PathBuf {
    c.node()
        .unwrap()
        .claim_dir(ns, claim)
        .expect("the claim is bound")
}

/// The messages of the events about an object, oldest first.
pub fn event_messages(k: &Kubectl, ns: &str, name: &str) -> Vec<(String, String)> {
    let list = k.json(&[
        "-n",
        ns,
        "get",
        "events",
        "--field-selector",
        &format!("involvedObject.name={name}"),
    ]);
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["reason"].as_str().unwrap_or_default().to_string(),
                e["message"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Polls `f` until it holds (a condition on files the node changes after an API event).
pub fn eventually(what: &str, f: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !f() {
        assert!(
            std::time::Instant::now() < deadline,
            "gave up waiting: {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
