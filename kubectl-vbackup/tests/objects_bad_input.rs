//! Bad input gives one clear error, a non-zero exit code, and nothing half-applied.

mod objects;

use objects::{Env, show, stderr};
use serde_json::Value;

fn fails_with(out: &std::process::Output, needle: &str) {
    assert!(!out.status.success(), "succeeded:\n{}", show(out));
    assert!(
        stderr(out).contains(needle),
        "expected {needle:?} in:\n{}",
        show(out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_backup_unknown_resource_and_malformed_mapping_are_refused() {
    let env = Env::start().await;
    env.create_nextcloud();
    fails_with(
        &env.vbackup(&["restore", "create", "--from-backup", "nope"]),
        "backup nope not found",
    );
    fails_with(
        &env.vbackup(&[
            "backup",
            "create",
            "b",
            "--include-resources",
            "configmaps,deploymnets",
        ]),
        "unknown resource deploymnets",
    );
    assert!(
        env.vbackup(&["backup", "get", "b"]).stdout.is_empty(),
        "a refused backup left something behind"
    );
    env.backup_nextcloud("nc1");
    fails_with(
        &env.vbackup(&[
            "restore",
            "create",
            "--from-backup",
            "nc1",
            "--namespace-mappings",
            "nextcloud",
        ]),
        "malformed --namespace-mappings entry \"nextcloud\"",
    );
    fails_with(
        &env.vbackup(&[
            "restore",
            "create",
            "--from-backup",
            "nc1",
            "--include-resources",
            "Ordr",
        ]),
        "unknown resource Ordr",
    );
    fails_with(
        &env.vbackup(&["backup", "create", "Bad_Name"]),
        "invalid backup name",
    );
    fails_with(
        &env.vbackup(&["backup", "create", "nc1"]),
        "backup nc1 already exists",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_or_corrupt_archive_is_refused_before_anything_is_applied() {
    let env = Env::start().await;
    env.create_nextcloud();
    env.backup_nextcloud("nc1");
    let archive = env.fs_root().join("backups/nc1/resources.tar.gz");
    let whole = std::fs::read(&archive).unwrap();

    std::fs::write(&archive, &whole[..whole.len() / 2]).unwrap();
    let out = env.vbackup(&[
        "restore",
        "create",
        "--from-backup",
        "nc1",
        "--namespace-mappings",
        "nextcloud:target",
    ]);
    fails_with(&out, "corrupt or truncated");
    assert!(
        env.get("namespaces", None, "target").await.is_none(),
        "a truncated archive was half-applied"
    );

    let restores: Value =
        serde_json::from_str(&env.vbackup_ok(&["restore", "get", "-o", "json"])).unwrap();
    let failed = &restores.as_array().unwrap()[0]["status"];
    assert_eq!(failed["phase"], "Failed", "{restores}");
    assert!(
        failed["failure"]
            .as_str()
            .unwrap()
            .contains("corrupt or truncated"),
        "{restores}"
    );

    let mut flipped = whole.clone();
    let at = flipped.len() * 2 / 3;
    flipped[at] ^= 0x55;
    std::fs::write(&archive, &flipped).unwrap();
    let out = env.vbackup(&[
        "restore",
        "create",
        "--from-backup",
        "nc1",
        "--namespace-mappings",
        "nextcloud:target",
    ]);
    assert!(
        !out.status.success(),
        "a corrupt archive was restored:\n{}",
        show(&out)
    );
    assert!(
        env.get("namespaces", None, "target").await.is_none(),
        "a corrupt archive was half-applied"
    );

    std::fs::write(&archive, &whole).unwrap();
    env.vbackup_ok(&[
        "restore",
        "create",
        "--from-backup",
        "nc1",
        "--namespace-mappings",
        "nextcloud:target",
    ]);
    assert!(env.get("namespaces", None, "target").await.is_some());
}
