//! Exit codes scripts rely on, through real kubectl: 0 the job completed, 1 it ran but did
//! not complete, 2 an error stopped the command.

mod objects;

use objects::{Env, show, stderr};

fn code(out: &std::process::Output) -> Option<i32> {
    out.status.code()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_tell_completed_incomplete_and_error_apart() {
    let env = Env::start().await;
    env.create_nextcloud();

    let out = env.vbackup(&[
        "backup",
        "create",
        "nc1",
        "--include-namespaces",
        "nextcloud",
    ]);
    assert_eq!(code(&out), Some(0), "a completed backup:\n{}", show(&out));

    // The custom resource's type is gone from the cluster and the restore leaves the CRD
    // out: its objects fail one by one, the rest is restored.
    let out = env.kubectl(&["delete", "crd", "certificates.acme.example.io"]);
    assert!(out.status.success(), "{}", show(&out));
    let out = env.vbackup(&[
        "restore",
        "create",
        "partial",
        "--from-backup",
        "nc1",
        "--namespace-mappings",
        "nextcloud:copy",
        "--exclude-resources",
        "CustomResourceDefinition",
    ]);
    assert_eq!(
        code(&out),
        Some(1),
        "a PartiallyFailed restore:\n{}",
        show(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("PartiallyFailed"),
        "{}",
        show(&out)
    );
    let out = env.vbackup(&["restore", "describe", "partial"]);
    assert_eq!(
        code(&out),
        Some(0),
        "describing a PartiallyFailed restore worked:\n{}",
        show(&out)
    );

    let out = env.vbackup(&["backup", "describe", "no-such-backup"]);
    assert_eq!(code(&out), Some(2), "{}", show(&out));
    assert!(stderr(&out).contains("not found"), "{}", show(&out));

    let out = env.vbackup(&["backup", "create", "x", "--no-such-flag"]);
    assert_eq!(code(&out), Some(2), "a bad flag:\n{}", show(&out));

    let out = env.vbackup(&["backup", "create", "Bad_Name"]);
    assert_eq!(code(&out), Some(2), "a bad name:\n{}", show(&out));

    // A cluster nobody answers for.
    let dead = env.dir.path().join("dead-kubeconfig");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        &dead,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: dead\n  cluster:\n    server: http://127.0.0.1:{port}\n\
             contexts:\n- name: dead\n  context:\n    cluster: dead\n    user: dead\ncurrent-context: dead\n\
             users:\n- name: dead\n  user: {{}}\n"
        ),
    )
    .unwrap();
    let out = env.vbackup(&["backup", "get", "--kubeconfig", dead.to_str().unwrap()]);
    assert_eq!(
        code(&out),
        Some(2),
        "an unreachable cluster:\n{}",
        show(&out)
    );
}
