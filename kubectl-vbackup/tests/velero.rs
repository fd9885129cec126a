//! Restoring Velero's backups: a bucket laid out as Velero writes it (restic-era volume
//! data included) is listed, described and restored by vbackup into the test cluster, and
//! every object and byte is compared with what the fixture wrote.

mod velero_bucket;
mod volumes;

use std::path::Path;

use velero_bucket::{PodVolume, VeleroBackup, shop_objects};
use volumes::{VolumeEnv, bytes, tree, write_file};

/// Files owned by an application user, with modes and mtimes worth checking.
fn app_files(dir: &Path) {
    write_file(
        &dir.join("orders/2024/0001.json"),
        br#"{"total": 42}"#,
        0o640,
        Some((1000, 1000)),
        1_700_000_000,
    );
    write_file(
        &dir.join("orders/2024/0002.json"),
        br#"{"total": 7}"#,
        0o600,
        Some((1000, 1000)),
        1_700_000_100,
    );
    write_file(
        &dir.join("big.bin"),
        &bytes(7, 3 << 20),
        0o644,
        None,
        1_700_000_200,
    );
    write_file(
        &dir.join("README"),
        b"shop data\n",
        0o444,
        Some((33, 33)),
        1_700_000_300,
    );
}

/// Backup `nightly` of namespace `shop`: claim `data` copied by restic from `source`, claim
/// `uploads` by kopia.
fn nightly_with_kopia(bucket: &Path, source: &Path) {
    VeleroBackup {
        name: "nightly",
        ns: "shop",
        format: "1.1.0",
        objects: shop_objects("shop"),
        volumes: vec![
            PodVolume {
                pod: "web-7d4b9c-x2x9z",
                volume: "data",
                uploader: Some("restic"),
                source: Some(source),
            },
            PodVolume {
                pod: "web-7d4b9c-x2x9z",
                volume: "uploads",
                uploader: Some("kopia"),
                source: None,
            },
        ],
        password: velero_bucket::PASSWORD,
    }
    .write(bucket);
}

/// Namespace `shop` as the fixture wrote it: every object back (pods through their
/// Deployment, volumes through their claims), values as written, and every byte, mode, owner
/// and mtime of the restic volume in its claim.
fn assert_shop_restored(
    env: &VolumeEnv,
    want: &std::collections::BTreeMap<String, volumes::Entry>,
) {
    let cm = env.kubectl(&[
        "-n",
        "shop",
        "get",
        "configmap",
        "settings",
        "-o",
        "jsonpath={.data.currency} {.data.motd}",
    ]);
    assert_eq!(cm, "EUR welcome back");
    let secret = env.kubectl(&[
        "-n",
        "shop",
        "get",
        "secret",
        "creds",
        "-o",
        "jsonpath={.data.password}",
    ]);
    assert_eq!(secret, "aHVudGVyMg==");
    for object in shop_objects("shop") {
        let kind = object["kind"].as_str().unwrap();
        if matches!(kind, "Pod" | "PersistentVolume") {
            continue;
        }
        let name = object["metadata"]["name"].as_str().unwrap();
        let got = env.cluster.kubectl(&["-n", "shop", "get", kind, name]);
        assert!(got.status.success(), "{kind} {name} was not restored");
    }
    env.wait_for("shop", "deployment/web", "{.status.readyReplicas}", "1");
    assert_eq!(
        &tree(&env.claim_dir("shop", "data")),
        want,
        "claim data differs from what Velero copied"
    );
}

fn velero_location(env: &VolumeEnv, name: &str, bucket: &Path, extra: &[&str]) -> String {
    let mut args = vec![
        "location",
        "create",
        name,
        "--provider",
        "filesystem",
        "--path",
        bucket.to_str().unwrap(),
        "--pod-access",
        "hostPath",
        "--format",
        "velero",
    ];
    args.extend_from_slice(extra);
    env.ok(&args)
}

#[test]
fn velero_restic_backups_come_back_objects_and_data() {
    let env = VolumeEnv::start();
    let bucket = env.dir.path().join("velero-bucket");
    let source = env.dir.path().join("volume-data");
    app_files(&source);
    let want = tree(&source);
    nightly_with_kopia(&bucket, &source);

    let out = velero_location(&env, "old", &bucket, &[]);
    assert!(out.contains("Velero bucket, read only"), "{out}");
    let listed = env.ok(&["backup", "get", "--storage-location", "old"]);
    assert!(
        listed.contains("nightly") && listed.contains("Completed"),
        "{listed}"
    );
    let described = env.ok(&[
        "backup",
        "describe",
        "nightly",
        "--storage-location",
        "old",
        "--details",
    ]);
    for want in [
        "shop",
        "web-7d4b9c-x2x9z/data",
        "a warning Velero recorded",
        "kopia repository",
    ] {
        assert!(
            described.contains(want),
            "describe lacks {want:?}:\n{described}"
        );
    }
    let logs = env.ok(&["backup", "logs", "nightly", "--storage-location", "old"]);
    assert!(logs.contains("Setting up backup log"), "{logs}");

    // Nothing is ever written into Velero's bucket.
    let (_, err) = env.fails(&["backup", "create", "mine", "--storage-location", "old"]);
    assert!(
        err.contains("ReadOnly") || err.contains("read only") || err.contains("read-only"),
        "{err}"
    );

    let (ok, out, err) = env.cluster.vbackup(&[
        "restore",
        "create",
        "from-velero",
        "--from-backup",
        "nightly",
        "--storage-location",
        "old",
    ]);
    // The kopia volume cannot come back: the restore says so and is PartiallyFailed.
    assert!(
        !ok,
        "a kopia volume must make the restore PartiallyFailed:\n{out}\n{err}"
    );
    let all = format!("{out}\n{err}");
    assert!(all.contains("PartiallyFailed"), "{all}");
    let described = env.ok(&["restore", "describe", "from-velero"]);
    assert!(
        described.contains("kopia repository, not readable by vbackup"),
        "{described}"
    );

    // Objects as the fixture wrote them, server fields gone.
    let uid = env.kubectl(&[
        "-n",
        "shop",
        "get",
        "configmap",
        "settings",
        "-o",
        "jsonpath={.metadata.uid}",
    ]);
    assert_ne!(
        uid, "uid-settings",
        "the server gives restored objects new uids"
    );
    assert_shop_restored(&env, &want);
}

#[test]
fn velero_layouts_old_and_damaged_fail_clearly() {
    let env = VolumeEnv::start();
    let bucket = env.dir.path().join("velero-bucket");
    let source = env.dir.path().join("volume-data");
    app_files(&source);
    // Format 1.0 (Velero ≤ 1.3), no uploader type (restic was the only one), a custom password.
    VeleroBackup {
        name: "old-format",
        ns: "legacy",
        format: "1.0",
        objects: shop_objects("legacy"),
        volumes: vec![PodVolume {
            pod: "web-7d4b9c-x2x9z",
            volume: "data",
            uploader: None,
            source: Some(&source),
        }],
        password: "not-the-default",
    }
    .write(&bucket);

    let (_, err) = env.fails(&[
        "location",
        "create",
        "rw",
        "--provider",
        "filesystem",
        "--path",
        bucket.to_str().unwrap(),
        "--format",
        "velero",
        "--access-mode",
        "ReadWrite",
    ]);
    assert!(err.contains("read only"), "{err}");

    // Without the password Secret, Velero's default password does not open the repository.
    velero_location(&env, "nopass", &bucket, &["--skip-check"]);
    let (_, err) = env.fails(&[
        "snapshot",
        "ls",
        "--backup",
        "old-format",
        "-n",
        "legacy",
        "--pvc",
        "data",
        "--storage-location",
        "nopass",
    ]);
    assert!(
        err.to_lowercase().contains("password") || err.contains("key"),
        "{err}"
    );

    env.kubectl(&[
        "-n",
        "vbackup-system",
        "create",
        "secret",
        "generic",
        "velero-repo-credentials",
        "--from-literal=repository-password=not-the-default",
    ]);
    velero_location(
        &env,
        "old",
        &bucket,
        &["--repository-password-secret", "velero-repo-credentials"],
    );
    let listing = env.ok(&[
        "snapshot",
        "ls",
        "--backup",
        "old-format",
        "-n",
        "legacy",
        "--pvc",
        "data",
        "--storage-location",
        "old",
    ]);
    assert!(
        listing.contains("orders") && listing.contains("big.bin"),
        "{listing}"
    );
    let out_dir = env.dir.path().join("one-file");
    env.ok(&[
        "snapshot",
        "restore",
        "--backup",
        "old-format",
        "-n",
        "legacy",
        "--pvc",
        "data",
        "--storage-location",
        "old",
        "--path",
        "orders/2024/0002.json",
        "--to",
        out_dir.to_str().unwrap(),
    ]);
    let restored = std::fs::read(out_dir.join("0002.json"))
        .or_else(|_| std::fs::read(out_dir.join("orders/2024/0002.json")));
    assert_eq!(
        restored.expect("the single file is restored"),
        br#"{"total": 7}"#
    );

    env.ok(&[
        "restore",
        "create",
        "legacy-back",
        "--from-backup",
        "old-format",
        "--storage-location",
        "old",
    ]);
    assert_eq!(tree(&env.claim_dir("legacy", "data")), tree(&source));

    // A repository that is gone: the volume names the missing repository.
    std::fs::remove_dir_all(bucket.join("restic/legacy")).unwrap();
    let (_, err) = env.fails(&[
        "snapshot",
        "ls",
        "--backup",
        "old-format",
        "-n",
        "legacy",
        "--pvc",
        "data",
        "--storage-location",
        "old",
    ]);
    assert!(err.contains("restic/legacy/config"), "{err}");
    // A backup whose archive is gone: a clear error, nothing restored.
    std::fs::remove_file(bucket.join("backups/old-format/old-format.tar.gz")).unwrap();
    let (_, err) = env.fails(&[
        "restore",
        "create",
        "again",
        "--from-backup",
        "old-format",
        "--storage-location",
        "old",
        "--namespace-mappings",
        "legacy:legacy2",
    ]);
    assert!(err.contains("has no object archive"), "{err}");
    let gone = env.cluster.kubectl(&["get", "namespace", "legacy2"]);
    assert!(
        !gone.status.success(),
        "nothing is restored from a backup without its archive"
    );
}

#[test]
fn velero_s3_bucket_read_with_velero_own_credentials_secret() {
    let env = VolumeEnv::start();
    let fixture = env.dir.path().join("fixture");
    let source = env.dir.path().join("volume-data");
    app_files(&source);
    VeleroBackup {
        name: "weekly",
        ns: "shop",
        format: "1.1.0",
        objects: shop_objects("shop"),
        volumes: vec![PodVolume {
            pod: "web-7d4b9c-x2x9z",
            volume: "data",
            uploader: Some("restic"),
            source: Some(&source),
        }],
        password: velero_bucket::PASSWORD,
    }
    .write(&fixture);
    // The bucket as Velero leaves it on S3: the same keys under Velero's prefix.
    let s3 = env.s3();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let bucket = rt.block_on(s3.bucket("velero")).unwrap();
    rt.block_on(s3.upload_dir(&bucket, "velero", &fixture))
        .unwrap();
    // Velero's Secret, unchanged: an AWS shared-credentials file under the key `cloud`.
    let cloud = format!(
        "[default]\naws_access_key_id={}\naws_secret_access_key={}\n",
        s3.access_key_id, s3.secret_access_key
    );
    env.kubectl(&[
        "-n",
        "vbackup-system",
        "create",
        "secret",
        "generic",
        "cloud-credentials",
        &format!("--from-literal=cloud={cloud}"),
    ]);
    env.ok(&[
        "location",
        "create",
        "velero-s3",
        "--provider",
        "s3",
        "--format",
        "velero",
        "--bucket",
        &bucket,
        "--prefix",
        "velero",
        "--region",
        "us-east-1",
        "--endpoint",
        &s3.endpoint,
        "--path-style",
        "--credentials-secret",
        "cloud-credentials",
    ]);
    let listed = env.ok(&["backup", "get", "--storage-location", "velero-s3"]);
    assert!(listed.contains("weekly"), "{listed}");
    env.ok(&[
        "restore",
        "create",
        "from-s3",
        "--from-backup",
        "weekly",
        "--storage-location",
        "velero-s3",
    ]);
    let cm = env.kubectl(&[
        "-n",
        "shop",
        "get",
        "configmap",
        "settings",
        "-o",
        "jsonpath={.data.currency}",
    ]);
    assert_eq!(cm, "EUR");
    assert_eq!(tree(&env.claim_dir("shop", "data")), tree(&source));
}

/// Every file under `dir` with its size: what a location holds, to tell whether an import
/// wrote anything.
fn files_under(dir: &Path) -> std::collections::BTreeMap<String, u64> {
    let mut out = std::collections::BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                todo.push(path);
            } else {
                let rel = path
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                out.insert(rel, entry.metadata().unwrap().len());
            }
        }
    }
    out
}

#[test]
fn velero_backups_imported_then_restored_without_the_bucket() {
    let env = VolumeEnv::start();
    let bucket = env.dir.path().join("velero-bucket");
    let source = env.dir.path().join("volume-data");
    app_files(&source);
    let want = tree(&source);
    nightly_with_kopia(&bucket, &source);
    velero_location(&env, "old", &bucket, &[]);
    let frozen = env.dir.path().join("frozen");
    std::fs::create_dir_all(&frozen).unwrap();
    env.ok(&[
        "location",
        "create",
        "frozen",
        "--provider",
        "filesystem",
        "--path",
        frozen.to_str().unwrap(),
    ]);
    env.ok(&["location", "set-readonly", "frozen"]);

    // Bad input: exit 2, a message naming the problem, nothing written anywhere.
    let store = env.store_dir();
    let before = files_under(&store);
    for (args, says) in [
        (
            vec![
                "nightly",
                "no-such-backup",
                "--location",
                "old",
                "--to",
                "local",
            ],
            "no-such-backup",
        ),
        (
            vec!["nightly", "--location", "old", "--to", "frozen"],
            "ReadOnly",
        ),
        (
            vec!["nightly", "--location", "old", "--to", "old"],
            "Velero bucket",
        ),
        (
            vec!["nightly", "--location", "local", "--to", "local"],
            "not a Velero bucket",
        ),
    ] {
        let out = env
            .cluster
            .kubectl(&[&["vbackup", "velero", "import"], &args[..]].concat());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    assert_eq!(
        files_under(&store),
        before,
        "a refused import wrote nothing"
    );
    assert!(
        files_under(&frozen)
            .keys()
            .all(|k| !k.starts_with("backups/"))
    );

    // The kopia volume cannot come over: it is named, the rest is imported, exit 1.
    let (ok, out, err) = env.cluster.vbackup(&[
        "velero",
        "import",
        "nightly",
        "--location",
        "old",
        "--to",
        "local",
    ]);
    assert!(
        !ok,
        "a kopia volume makes the import incomplete:\n{out}\n{err}"
    );
    assert!(out.contains("imported"), "{out}");
    assert!(
        out.contains("volume shop/uploads not imported") && out.contains("kopia repository"),
        "{out}"
    );
    let described = env.ok(&[
        "backup",
        "describe",
        "nightly",
        "--storage-location",
        "local",
        "-o",
        "json",
    ]);
    let record: serde_json::Value = serde_json::from_str(&described).unwrap();
    let labels = record
        .pointer("/spec/labels")
        .or_else(|| record.pointer("/0/spec/labels"))
        .unwrap_or_else(|| panic!("no labels in {described}"));
    assert_eq!(labels["vbackup.io/imported-from"], "velero", "{described}");
    assert_eq!(labels["vbackup.io/velero-backup"], "nightly", "{described}");
    // The archive is vbackup's, encrypted: no object's text is readable in it.
    let archive = std::fs::read(store.join("backups/nightly/resources.tar.gz")).unwrap();
    assert!(
        !archive.windows(8).any(|w| w == b"settings"),
        "the re-packed archive is encrypted"
    );

    // The copied repository is sound for the stock restic, data included.
    let password = env.ok(&["repo", "password", "shop", "--storage-location", "local"]);
    let repo = store.join("repos/shop");
    velero_bucket::restic(
        &repo,
        password.trim(),
        Path::new("/"),
        &["check", "--read-data"],
    );
    let listing = velero_bucket::restic(&repo, password.trim(), Path::new("/"), &["ls", "latest"]);
    assert!(listing.contains("/data/orders/2024/0001.json"), "{listing}");

    // Again: nothing new. Under another name: a new record, the same snapshot's blobs.
    let copied = files_under(&store);
    let (_, out, _) = env.cluster.vbackup(&[
        "velero",
        "import",
        "nightly",
        "--location",
        "old",
        "--to",
        "local",
    ]);
    assert!(out.contains("already imported"), "{out}");
    assert_eq!(files_under(&store), copied, "a second import wrote nothing");
    env.cluster.vbackup(&[
        "velero",
        "import",
        "nightly",
        "--location",
        "old",
        "--to",
        "local",
        "--rename-prefix",
        "again-",
    ]);
    let data = |files: &std::collections::BTreeMap<String, u64>| {
        files
            .iter()
            .filter(|(k, _)| k.starts_with("repos/shop/data/"))
            .map(|(k, v)| (k.clone(), *v))
            .collect::<Vec<_>>()
    };
    let after = files_under(&store);
    assert!(after.contains_key("backups/again-nightly/vbackup-backup.json"));
    assert_eq!(data(&after), data(&copied), "no blob is copied twice");

    // The Velero bucket retired: the imported backup restores every object and byte.
    env.ok(&["location", "delete", "old"]);
    std::fs::remove_dir_all(&bucket).unwrap();
    let (_, out, err) = env.cluster.vbackup(&[
        "restore",
        "create",
        "from-import",
        "--from-backup",
        "nightly",
        "--storage-location",
        "local",
    ]);
    let all = format!("{out}\n{err}");
    assert!(
        all.contains("PartiallyFailed"),
        "the kopia volume is reported: {all}"
    );
    assert_shop_restored(&env, &want);
}
