//! `kubectl vbackup location …` end to end: real kubectl, the test API server, a directory
//! and an authenticated S3 server.

use std::path::{Path, PathBuf};

use vbackup_test_support::{PluginCluster, S3Server};

fn cluster() -> PluginCluster {
    PluginCluster::start(env!("CARGO_BIN_EXE_kubectl-vbackup")).unwrap()
}

fn dir_arg(path: &Path) -> String {
    path.to_str().unwrap().to_string()
}

#[test]
fn location_commands_say_how_to_install_the_crd_when_it_is_missing() {
    let env = cluster();
    let (ok, _, stderr) = env.vbackup(&["location", "get"]);
    assert!(!ok);
    assert!(
        stderr.contains("kubectl vbackup install")
            && stderr.contains("kubectl apply -f manifests/crds/"),
        "{stderr}"
    );
}

#[test]
fn filesystem_location_lifecycle() {
    let env = cluster();
    env.install_crds();
    let store = tempfile::tempdir().unwrap();
    let path: PathBuf = store.path().join("backups");

    let (ok, stdout, stderr) = env.vbackup(&[
        "location",
        "create",
        "local",
        "--provider",
        "filesystem",
        "--path",
        &dir_arg(&path),
        "--default",
    ]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("storage location local created") && stdout.contains("checked"),
        "{stdout}"
    );
    assert!(
        path.is_dir(),
        "create makes the directory of a writable filesystem location"
    );
    assert!(
        !path.join("vbackup-probe").exists(),
        "the probe object is removed"
    );

    let (ok, stdout, _) = env.vbackup(&["location", "get"]);
    assert!(ok);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].starts_with("NAME") && lines[0].contains("PHASE"),
        "{stdout}"
    );
    assert!(
        lines[1].starts_with("local")
            && lines[1].contains("Available")
            && lines[1].contains("true"),
        "{stdout}"
    );

    // The object is a real custom resource that kubectl itself sees.
    let out = env.kubectl(&["get", "bsl", "-n", "vbackup-system", "-o", "json"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        list["items"][0]["spec"]["filesystem"]["path"],
        dir_arg(&path)
    );
    assert_eq!(list["items"][0]["status"]["phase"], "Available");

    let (ok, stdout, stderr) = env.vbackup(&[
        "location",
        "create",
        "local",
        "--provider",
        "filesystem",
        "--path",
        "/tmp",
    ]);
    assert!(!ok && stdout.is_empty());
    assert!(stderr.contains("local already exists"), "{stderr}");

    let (ok, stdout, _) = env.vbackup(&["location", "set-readonly", "local"]);
    assert!(ok && stdout.contains("now ReadOnly"), "{stdout}");
    let (ok, stdout, _) = env.vbackup(&["location", "check", "local"]);
    assert!(
        ok && stdout.contains("ReadOnly: reachable, nothing written"),
        "{stdout}"
    );
    let (_, stdout, _) = env.vbackup(&["location", "get", "local", "-o", "json"]);
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json[0]["spec"]["accessMode"], "ReadOnly");
    let (ok, _, _) = env.vbackup(&["location", "set-readonly", "local", "--off"]);
    assert!(ok);

    let (ok, stdout, _) = env.vbackup(&["location", "describe", "local"]);
    assert!(
        ok && stdout.contains("Access mode:   ReadWrite")
            && stdout.contains("Phase:         Available"),
        "{stdout}"
    );

    std::fs::write(path.join("keep-me"), b"data").unwrap();
    let (ok, stdout, _) = env.vbackup(&["location", "delete", "local"]);
    assert!(ok && stdout.contains("was not touched"), "{stdout}");
    assert!(
        path.join("keep-me").exists(),
        "deleting a location never deletes backups"
    );
    let (ok, _, stderr) = env.vbackup(&["location", "describe", "local"]);
    assert!(
        !ok && stderr.contains("storage location local not found"),
        "{stderr}"
    );
}

#[test]
fn only_one_location_stays_default() {
    let env = cluster();
    env.install_crds();
    let store = tempfile::tempdir().unwrap();
    for name in ["first", "second"] {
        let path = dir_arg(&store.path().join(name));
        let (ok, _, stderr) = env.vbackup(&[
            "location",
            "create",
            name,
            "--provider",
            "filesystem",
            "--path",
            &path,
            "--default",
        ]);
        assert!(ok, "{stderr}");
    }
    assert_eq!(defaults(&env), ["second"]);

    // The default is chosen again later, not only at creation.
    let (ok, stdout, stderr) = env.vbackup(&["location", "set-default", "first"]);
    assert!(
        ok && stdout.contains("first is now the default"),
        "{stderr}"
    );
    assert_eq!(defaults(&env), ["first"]);
    let (ok, _, stderr) = env.vbackup(&["location", "set-default", "third"]);
    assert!(
        !ok && stderr.contains("location third not found"),
        "{stderr}"
    );
    assert_eq!(
        defaults(&env),
        ["first"],
        "a failed set-default changes nothing"
    );
}

/// The names of the locations marked default.
fn defaults(env: &PluginCluster) -> Vec<String> {
    let (ok, stdout, stderr) = env.vbackup(&["location", "get", "-o", "json"]);
    assert!(ok, "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    json.as_array()
        .unwrap()
        .iter()
        .filter(|l| l["spec"]["default"] == true)
        .map(|l| l["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn s3_location_is_checked_before_it_is_saved() {
    let env = cluster();
    env.install_crds();
    let s3 = S3Server::shared().unwrap();
    let bucket = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(s3.bucket("loc"))
        .unwrap();
    let secret = |name: &str, secret_key: &str| {
        let out = env.kubectl(&[
            "create",
            "secret",
            "generic",
            name,
            "-n",
            "vbackup-system",
            &format!("--from-literal=AWS_ACCESS_KEY_ID={}", s3.access_key_id),
            &format!("--from-literal=AWS_SECRET_ACCESS_KEY={secret_key}"),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    assert!(
        env.kubectl(&["create", "namespace", "vbackup-system"])
            .status
            .success()
    );
    secret("good", &s3.secret_access_key);
    secret("bad", "definitely-wrong-secret");
    let create = |name: &str, bucket: &str, creds: &str| {
        env.vbackup(&[
            "location",
            "create",
            name,
            "--provider",
            "s3",
            "--bucket",
            bucket,
            "--prefix",
            "cluster-a",
            "--endpoint",
            &s3.endpoint,
            "--path-style",
            "--region",
            "gra",
            "--credentials-secret",
            creds,
        ])
    };

    let (ok, _, stderr) = create("wrong-key", &bucket, "bad");
    assert!(!ok);
    assert!(
        stderr.contains("access denied") && stderr.contains("check the access key"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("definitely-wrong-secret"),
        "a secret was printed: {stderr}"
    );

    let (ok, _, stderr) = create("no-bucket", "vbackup-bucket-that-does-not-exist", "good");
    assert!(
        !ok && stderr.contains("bucket vbackup-bucket-that-does-not-exist does not exist"),
        "{stderr}"
    );

    let (ok, _, stderr) = create("no-secret", &bucket, "missing");
    assert!(
        !ok && stderr.contains("Secret missing not found"),
        "{stderr}"
    );

    let (_, stdout, _) = env.vbackup(&["location", "get", "-o", "json"]);
    assert_eq!(
        stdout.trim(),
        "[]",
        "failed creates must leave nothing behind"
    );

    let (ok, stdout, stderr) = create("ovh", &bucket, "good");
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains(&format!("s3://{bucket}/cluster-a")),
        "{stdout}"
    );
    let (ok, stdout, stderr) = env.vbackup(&["location", "check", "ovh"]);
    assert!(ok && stdout.contains("available"), "{stdout}{stderr}");

    // Rotate the Secret to a wrong key: check now fails, with exit code 1, and says why.
    assert!(
        env.kubectl(&["delete", "secret", "good", "-n", "vbackup-system"])
            .status
            .success()
    );
    secret("good", "rotated-but-wrong");
    let (ok, _, stderr) = env.vbackup(&["location", "check", "ovh"]);
    assert!(
        !ok && stderr.contains("unavailable") && stderr.contains("access denied"),
        "{stderr}"
    );
    let (_, stdout, _) = env.vbackup(&["location", "get", "ovh"]);
    assert!(stdout.contains("Unavailable"), "{stdout}");
}
