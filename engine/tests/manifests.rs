//! `manifests/install.yaml` must match what `kubectl vbackup install` applies, generated from
//! the same Rust.

use std::path::Path;

#[test]
fn install_manifest_is_up_to_date() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/install.yaml");
    let expected = vbackup_engine::install::manifest().unwrap();
    if std::env::var_os("VBACKUP_UPDATE_MANIFESTS").is_some() {
        std::fs::write(&path, &expected).unwrap();
    }
    let actual = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        actual == expected,
        "{} is stale: run `VBACKUP_UPDATE_MANIFESTS=1 cargo test -p vbackup-engine --test manifests` and commit it",
        path.display()
    );
}
