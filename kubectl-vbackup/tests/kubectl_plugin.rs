//! The plugin as users meet it: found by real `kubectl` on PATH and run through it.

use std::path::Path;
use std::process::Command;

/// A PATH holding only the plugin and the system's kubectl, so other plugins don't interfere.
fn plugin_path(dir: &Path) -> String {
    let plugin = dir.join("kubectl-vbackup");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_kubectl-vbackup"), &plugin).unwrap();
    format!("{}:/usr/local/bin:/usr/bin:/bin", dir.display())
}

fn kubectl(path: &str, args: &[&str]) -> std::process::Output {
    Command::new("kubectl")
        .args(args)
        .env("PATH", path)
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .output()
        .unwrap()
}

#[test]
fn kubectl_plugin_list_finds_the_plugin_on_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = plugin_path(dir.path());
    let out = kubectl(&path, &["plugin", "list"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("{}/kubectl-vbackup", dir.path().display())),
        "{stdout}"
    );
}

#[test]
fn kubectl_vbackup_version_runs_through_kubectl_without_a_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let path = plugin_path(dir.path());
    let out = kubectl(&path, &["vbackup", "version"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("Client Version: v{}", env!("CARGO_PKG_VERSION"))),
        "{stdout}"
    );
    assert!(stdout.contains("Server Version: unavailable"), "{stdout}");
    let out = kubectl(&path, &["vbackup", "version", "-o", "json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["clientVersion"], env!("CARGO_PKG_VERSION"));
}

#[test]
fn completion_scripts_name_the_plugin_binary() {
    for shell in ["bash", "zsh", "fish"] {
        let out = Command::new(env!("CARGO_BIN_EXE_kubectl-vbackup"))
            .args(["completion", shell])
            .output()
            .unwrap();
        assert!(out.status.success(), "{shell}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("kubectl-vbackup"),
            "{shell}"
        );
    }
    let out = Command::new(env!("CARGO_BIN_EXE_kubectl-vbackup"))
        .args(["completion", "powershell"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn bad_location_flags_fail_before_any_connection_with_one_clear_line() {
    let cases: &[(&[&str], &str)] = &[
        (&["--provider", "azure"], "invalid value 'azure'"),
        (
            &["--provider", "s3", "--credentials-secret", "c"],
            "needs a bucket: add --bucket",
        ),
        (
            &["--provider", "s3", "--bucket", "b-1"],
            "needs credentials: add --credentials-secret",
        ),
        (
            &[
                "--provider",
                "s3",
                "--bucket",
                "bkt",
                "--credentials-secret",
                "c",
                "--endpoint",
                "s3.example.com",
            ],
            "not a valid URL",
        ),
        (
            &["--provider", "filesystem"],
            "needs a directory: add --path",
        ),
        (
            &[
                "--provider",
                "filesystem",
                "--path",
                "/x",
                "--bucket",
                "bkt",
            ],
            "are for --provider s3",
        ),
    ];
    for (args, expected) in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_kubectl-vbackup"))
            .args(["location", "create", "x"])
            .args(*args)
            .env("KUBECONFIG", "/nonexistent/kubeconfig")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(
            !stderr.contains("kubeconfig"),
            "{args:?} tried to connect: {stderr}"
        );
    }
}

#[test]
fn kubectl_vbackup_version_shows_the_cluster_version_when_reachable() {
    let cluster = vbackup_testcluster::TestCluster::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = plugin_path(dir.path());
    let out = Command::new("kubectl")
        .args(["vbackup", "version"])
        .env("PATH", &path)
        .env("KUBECONFIG", cluster.kubeconfig_path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let server = Command::new("kubectl")
        .args(["version", "-o", "json"])
        .env("KUBECONFIG", cluster.kubeconfig_path())
        .output()
        .unwrap();
    let server: serde_json::Value = serde_json::from_slice(&server.stdout).unwrap();
    let git_version = server["serverVersion"]["gitVersion"].as_str().unwrap();
    assert!(
        stdout.contains(&format!("Server Version: {git_version}")),
        "{stdout}"
    );
}
