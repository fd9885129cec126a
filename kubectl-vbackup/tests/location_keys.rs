//! Location keys through the plugin: shown once, imported by a second cluster, verified
//! against the repositories already there, rotated, and the repository password usable by
//! the stock restic.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use vbackup_engine::keys::LocationKey;
use vbackup_engine::repo::{RepoOptions, VolumeRepo};
use vbackup_engine::store::fs::FsBackend;
use vbackup_engine::store::{AccessMode, Store};
use vbackup_test_support::PluginCluster;

fn cluster() -> PluginCluster {
    let cluster = PluginCluster::start(env!("CARGO_BIN_EXE_kubectl-vbackup")).unwrap();
    cluster.install_crds();
    cluster
}

/// `kubectl vbackup location create shared --provider filesystem --path PATH EXTRA…`.
fn create_shared(cluster: &PluginCluster, path: &str, extra: &[&str]) -> (bool, String, String) {
    let args = [
        "location",
        "create",
        "shared",
        "--provider",
        "filesystem",
        "--path",
        path,
    ];
    cluster.vbackup(&[&args[..], extra].concat())
}

fn printed_key(stdout: &str) -> LocationKey {
    let line = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("vbk1_"))
        .expect("a key is printed");
    LocationKey::parse(line).unwrap()
}

fn write_key(dir: &Path, name: &str, key: &LocationKey) -> String {
    let path = dir.join(name);
    std::fs::write(&path, format!("{}\n", key.to_text())).unwrap();
    path.to_str().unwrap().to_string()
}

async fn make_repository(location: &Path, namespace: &str, key: &LocationKey) {
    let store = Store::new(
        "test",
        Arc::new(FsBackend::new(location)),
        AccessMode::ReadWrite,
    );
    VolumeRepo::open_or_init(&store, namespace, key, RepoOptions::default())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_cluster_reads_the_first_clusters_location_only_with_its_key() {
    let work = tempfile::tempdir().unwrap();
    let location = work.path().join("store");
    let path = location.to_str().unwrap();

    // Cluster A creates the location: the key is printed once and kept in a Secret.
    let a = cluster();
    let (ok, stdout, stderr) = create_shared(&a, path, &[]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("Location key (shown once)") && stdout.contains("outside this cluster"),
        "{stdout}"
    );
    let key = printed_key(&stdout);
    let secret = a.kubectl(&[
        "get",
        "secret",
        "shared-location-key",
        "-n",
        "vbackup-system",
        "-o",
        "json",
    ]);
    assert!(secret.status.success(), "the key Secret exists");
    make_repository(&location, "prod", &key).await;

    // Cluster B cannot silently start a second key in the same location.
    let b = cluster();
    let (ok, _, stderr) = create_shared(&b, path, &[]);
    assert!(
        !ok && stderr.contains("sealed with another key") && stderr.contains("--key-file"),
        "{stderr}"
    );
    let (_, stdout, _) = b.vbackup(&["location", "get", "-o", "json"]);
    assert_eq!(
        stdout.trim(),
        "[]",
        "nothing is created when the key check fails"
    );

    // A wrong key is refused; a malformed one is named as such; the right one works.
    let wrong = write_key(work.path(), "wrong", &LocationKey::generate().unwrap());
    let (ok, _, stderr) = create_shared(&b, path, &["--key-file", &wrong]);
    assert!(
        !ok && stderr.contains("does not open the repository of namespace prod"),
        "{stderr}"
    );
    std::fs::write(work.path().join("garbled"), "vbk1_not-a-key").unwrap();
    let garbled = work.path().join("garbled");
    let (ok, _, stderr) = create_shared(&b, path, &["--key-file", garbled.to_str().unwrap()]);
    assert!(
        !ok && stderr.contains("not a vbackup location key"),
        "{stderr}"
    );
    let right = write_key(work.path(), "right", &key);
    let (ok, stdout, stderr) = create_shared(
        &b,
        path,
        &["--key-file", &right, "--access-mode", "ReadOnly"],
    );
    assert!(
        ok && stdout.contains("using the location key from --key-file"),
        "{stdout}{stderr}"
    );
    assert!(
        !stdout.contains(&key.to_text()),
        "an imported key is not printed again"
    );

    // The repository password opens the repository with the stock restic.
    let (ok, password, stderr) = b.vbackup(&["repo", "password", "prod"]);
    assert!(ok, "{stderr}");
    let restic = Command::new("restic")
        .args([
            "-r",
            location.join("repos/prod").to_str().unwrap(),
            "cat",
            "config",
            "--no-cache",
        ])
        .env("RESTIC_PASSWORD", password.trim())
        .output()
        .expect("restic is installed by scripts/test.sh");
    assert!(
        restic.status.success(),
        "{}",
        String::from_utf8_lossy(&restic.stderr)
    );

    // import-key refuses a key that does not open what is there.
    let (ok, _, stderr) = b.vbackup(&["location", "import-key", "shared", "--key-file", &wrong]);
    assert!(!ok && stderr.contains("does not open"), "{stderr}");

    // Rotation on A re-seals every repository; B's copy of the old key stops working until
    // the new key is imported.
    let (ok, stdout, stderr) = a.vbackup(&["location", "rotate-key", "shared"]);
    assert!(
        ok && stdout.contains("1 repository passwords re-sealed: prod"),
        "{stdout}{stderr}"
    );
    let new_key = printed_key(&stdout);
    assert_ne!(new_key, key);
    let (ok, _, stderr) = b.vbackup(&["repo", "password", "prod"]);
    assert!(
        !ok && stderr.contains("does not open the repository of namespace prod"),
        "{stderr}"
    );
    let rotated = write_key(work.path(), "rotated", &new_key);
    let (ok, stdout, _) = b.vbackup(&["location", "import-key", "shared", "--key-file", &rotated]);
    assert!(
        ok && stdout.contains("opens the 1 repositories in the location: prod"),
        "{stdout}"
    );
    let (ok, new_password, _) = b.vbackup(&["repo", "password", "prod"]);
    assert!(ok);
    assert_eq!(
        new_password, password,
        "rotation re-seals the same repository password"
    );
}

#[test]
fn a_recreated_location_keeps_its_key_secret() {
    let work = tempfile::tempdir().unwrap();
    let path = work.path().join("store");
    let c = cluster();
    let create = || {
        c.vbackup(&[
            "location",
            "create",
            "loc",
            "--provider",
            "filesystem",
            "--path",
            path.to_str().unwrap(),
        ])
    };
    let (ok, stdout, _) = create();
    assert!(ok);
    let key = printed_key(&stdout);
    assert!(c.vbackup(&["location", "delete", "loc"]).0);
    let (ok, stdout, _) = create();
    assert!(
        ok && stdout.contains("kept the existing location key"),
        "{stdout}"
    );
    assert!(!stdout.contains(&key.to_text()));
}

/// Sets the provider values the cluster accepts for locations (a stricter schema stands for
/// any refusal by the API server: admission, quota, validation).
fn accept_providers(c: &PluginCluster, providers: &str) {
    let patch = format!(
        r#"[{{"op":"replace","path":"/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/provider/enum","value":{providers}}}]"#
    );
    let out = c.kubectl(&[
        "patch",
        "crd",
        "backupstoragelocations.vbackup.io",
        "--type",
        "json",
        "-p",
        &patch,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn key_secret_exists(c: &PluginCluster) -> bool {
    c.kubectl(&[
        "get",
        "secret",
        "shared-location-key",
        "-n",
        "vbackup-system",
    ])
    .status
    .success()
}

#[test]
fn a_location_the_cluster_refuses_leaves_no_key_and_the_retry_shows_its_key() {
    let work = tempfile::tempdir().unwrap();
    let path = work.path().join("store");
    let path = path.to_str().unwrap();
    let c = cluster();

    accept_providers(&c, r#"["s3"]"#);
    let (ok, stdout, stderr) = create_shared(&c, path, &[]);
    assert!(
        !ok && stderr.contains("cannot create location shared"),
        "{stdout}{stderr}"
    );
    assert!(
        !stdout.contains("vbk1_"),
        "no key is shown for a location that was not made"
    );
    assert!(
        !key_secret_exists(&c),
        "no key Secret is left without its location"
    );

    accept_providers(&c, r#"["s3","filesystem"]"#);
    let (ok, stdout, stderr) = create_shared(&c, path, &[]);
    assert!(
        ok && stdout.contains("Location key (shown once)"),
        "{stdout}{stderr}"
    );
    let key = printed_key(&stdout);
    assert!(key_secret_exists(&c));

    // A create killed after writing the key Secret leaves it marked as never shown: the next
    // create shows that key instead of silently keeping it.
    assert!(c.vbackup(&["location", "delete", "shared"]).0);
    let out = c.kubectl(&[
        "annotate",
        "secret",
        "shared-location-key",
        "-n",
        "vbackup-system",
        &format!("{}=true", vbackup_engine::store::key_secret::NOT_SHOWN),
    ]);
    assert!(out.status.success());
    let (ok, stdout, stderr) = create_shared(&c, path, &[]);
    assert!(
        ok && stdout.contains("Location key (shown once)"),
        "{stdout}{stderr}"
    );
    assert_eq!(printed_key(&stdout), key, "the kept key is the one shown");

    // Once shown, a recreated location keeps the key without showing it again.
    assert!(c.vbackup(&["location", "delete", "shared"]).0);
    let (ok, stdout, _) = create_shared(&c, path, &[]);
    assert!(
        ok && stdout.contains("kept the existing location key"),
        "{stdout}"
    );
    assert!(!stdout.contains(&key.to_text()));
}
