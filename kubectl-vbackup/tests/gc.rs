//! `kubectl vbackup gc` deletes expired backups with their volume snapshots and prunes the
//! repositories, so the bytes really leave the store; what is kept stays restorable.

mod volumes;

use std::path::Path;
use std::time::Duration;

use volumes::{VolumeEnv, bytes};

const MIB: usize = 1024 * 1024;

/// Bytes under `dir`, walked independently of vbackup.
fn du(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        total += if meta.is_dir() {
            du(&entry.path())
        } else {
            meta.len()
        };
    }
    total
}

#[test]
fn gc_deletes_expired_backups_and_frees_their_volume_data() {
    let env = VolumeEnv::start();
    env.deploy_app("gc", None, "ReadWriteOnce");
    let data = env.claim_dir("gc", "data");
    let old = bytes(7, 3 * MIB);
    let kept = bytes(8, 3 * MIB);
    std::fs::write(data.join("orders.db"), &old).unwrap();
    env.ok(&["backup", "create", "old", "-n", "gc", "--ttl", "1s"]);
    std::fs::write(data.join("orders.db"), &kept).unwrap();
    env.ok(&["backup", "create", "kept", "-n", "gc", "--ttl", "0s"]);
    let kept_record = env.ok(&["backup", "describe", "kept", "-o", "json"]);
    assert!(
        kept_record.contains("\"expires\": \"never\""),
        "{kept_record}"
    );
    std::thread::sleep(Duration::from_millis(1500));
    let store = env.store_dir();
    let before = du(&store);
    assert!(before > 6 * MIB as u64, "{before}");

    // A dry run lists and changes nothing.
    let out = env.ok(&["gc", "--dry-run"]);
    assert!(out.contains("would delete backup old (expired at"), "{out}");
    assert!(!out.contains("backup kept"), "{out}");
    assert_eq!(du(&store), before);

    // The first gc deletes the backup and marks the data only it used; the second (once
    // the prune delay has passed, here none) deletes that data.
    let out = env.ok(&["gc", "--prune-delay", "0s"]);
    assert!(out.contains("deleted backup old (expired at"), "{out}");
    assert!(out.contains("1 volume snapshots"), "{out}");
    assert!(out.contains("unused packs marked"), "{out}");
    let listed = env.ok(&["backup", "get"]);
    assert!(
        !listed.contains("old ") && listed.contains("kept"),
        "{listed}"
    );
    let out = env.ok(&["gc", "--prune-delay", "0s"]);
    assert!(out.contains("0 backups deleted"), "{out}");
    let after = du(&store);
    assert!(
        before - after >= 3 * MIB as u64 - 64 * 1024,
        "only {} bytes freed ({before} → {after}):\n{out}",
        before - after
    );
    assert!(out.contains("freed"), "{out}");

    // What is kept still reads back, byte for byte.
    let to = env.dir.path().join("restored");
    env.ok(&[
        "snapshot",
        "restore",
        "-n",
        "gc",
        "--backup",
        "kept",
        "--pvc",
        "data",
        "--path",
        "orders.db",
        "--to",
        to.to_str().unwrap(),
    ]);
    assert!(std::fs::read(to.join("orders.db")).unwrap() == kept);
}
