//! The object archive and item log are encrypted with the location key: the bucket reveals
//! no Secret, a flipped byte is a clear "damaged" error, and `backup download` gives the
//! decrypted archive.

mod objects;

use std::path::Path;
use std::process::Command;

use objects::{Env, show};

/// Every file under `root`, recursively.
fn files(root: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(root).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bucket_holds_no_secret_and_download_gives_the_decrypted_archive() {
    let env = Env::start().await;
    env.create_nextcloud();
    env.backup_nextcloud("nc1");

    // The Secret nextcloud-db holds "secret-password"; the archive would carry it base64.
    let (plain, base64) = (&b"secret-password"[..], &b"c2VjcmV0LXBhc3N3b3Jk"[..]);
    let stored = files(&env.fs_root());
    assert!(
        stored
            .iter()
            .any(|f| f.ends_with("backups/nc1/resources.tar.gz"))
    );
    for file in &stored {
        let bytes = std::fs::read(file).unwrap();
        assert!(
            !contains(&bytes, base64) && !contains(&bytes, plain),
            "{} holds the Secret's value",
            file.display()
        );
    }

    // Downloaded, the archive is a plain tar.gz that the stock tar reads.
    let to = env.dir.path().join("nc1.tar.gz");
    let out = env.vbackup(&["backup", "download", "nc1", "--to", to.to_str().unwrap()]);
    assert!(out.status.success(), "{}", show(&out));
    let tar = Command::new("tar")
        .args(["-xzOf", to.to_str().unwrap()])
        .arg("resources/secrets/namespaces/nextcloud/nextcloud-db.json")
        .output()
        .unwrap();
    assert!(
        tar.status.success(),
        "{}",
        String::from_utf8_lossy(&tar.stderr)
    );
    assert!(
        contains(&tar.stdout, base64),
        "the decrypted Secret is in the archive"
    );
    let out = env.vbackup(&["backup", "download", "nc1", "--to", to.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "an existing file is not overwritten"
    );

    // The item log reads back through the plugin, also after the location key is rotated.
    let log = env.vbackup_ok(&["backup", "logs", "nc1"]);
    assert!(log.contains("nextcloud-db"), "{log}");
    env.vbackup_ok(&["location", "rotate-key", "local"]);
    let log = env.vbackup_ok(&["backup", "logs", "nc1"]);
    assert!(log.contains("nextcloud-db"), "after rotation: {log}");

    // One flipped byte in the stored archive or log: a clear "damaged" error.
    let archive = env.fs_root().join("backups/nc1/resources.tar.gz");
    let mut bytes = std::fs::read(&archive).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&archive, &bytes).unwrap();
    let out = env.vbackup(&["backup", "download", "nc1", "--to", "-"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(show(&out).contains("damaged"), "{}", show(&out));
    let log_file = env.fs_root().join("backups/nc1/log.jsonl.gz");
    let mut bytes = std::fs::read(&log_file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(&log_file, &bytes).unwrap();
    let out = env.vbackup(&["backup", "logs", "nc1"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(show(&out).contains("damaged"), "{}", show(&out));
}
