//! `manifests/crds/` must match the CRDs generated from the Rust types.

use std::path::Path;

#[test]
fn crd_manifests_are_up_to_date() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/crds");
    let update = std::env::var_os("VBACKUP_UPDATE_CRDS").is_some();
    for (file, crd) in vbackup_engine::crds::all() {
        let expected = vbackup_engine::crds::to_yaml(&crd).unwrap();
        let path = dir.join(file);
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &expected).unwrap();
        }
        let actual = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            actual == expected,
            "{} is stale: run `VBACKUP_UPDATE_CRDS=1 cargo test -p vbackup-engine --test crds` and commit it",
            path.display()
        );
    }
}

#[test]
fn location_crd_is_namespaced_with_status_and_short_name() {
    let (_, crd) = vbackup_engine::crds::all().into_iter().next().unwrap();
    assert_eq!(crd.spec.group, "vbackup.io");
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(
        crd.spec.names.short_names.as_deref(),
        Some(&["bsl".to_string()][..])
    );
    let version = &crd.spec.versions[0];
    assert_eq!(version.name, "v1alpha1");
    assert!(
        version
            .subresources
            .as_ref()
            .and_then(|s| s.status.as_ref())
            .is_some()
    );
}
