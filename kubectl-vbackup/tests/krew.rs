//! `krew/vbackup.yaml` passes krew's own checks (`pkg/index/validation` and the index's
//! `validate-krew-manifest`: name = file name, apiVersion and kind, a `v`-prefixed semantic
//! version, selectors on `os`/`arch` only that never overlap, 64 lowercase hex sha256s, `bin`
//! and `files` set, short lines), and the archive xtask builds — here from the debug binary —
//! matches its entry, holds `bin` and the LICENSE, and unpacks into something
//! `kubectl plugin list` finds. The archive is read with the system's `tar` and hashed here,
//! not with xtask's own code.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use serde_json::Value;
use sha2::{Digest, Sha256};
use xtask::krew::{Platform, fill_manifest, package};

const MANIFEST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../krew/vbackup.yaml");
const LICENSE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../LICENSE");

/// Every os/arch pair krew's index checks selectors against, plus the arm64 ones we ship.
const KNOWN: [(&str, &str); 9] = [
    ("windows", "386"),
    ("windows", "amd64"),
    ("linux", "386"),
    ("linux", "amd64"),
    ("linux", "arm"),
    ("linux", "arm64"),
    ("darwin", "386"),
    ("darwin", "amd64"),
    ("darwin", "arm64"),
];

fn yaml(text: &str) -> Value {
    serde_saphyr::from_str(text).unwrap_or_else(|e| panic!("not YAML ({e}):\n{text}"))
}

/// krew's `semver.Parse`: a leading `v`, then MAJOR.MINOR.PATCH with optional pre-release and
/// build parts.
fn is_krew_semver(v: &str) -> bool {
    let Some(rest) = v.strip_prefix('v') else {
        return false;
    };
    let (core, _build) = rest.split_once('+').unwrap_or((rest, ""));
    let (core, pre) = core.split_once('-').unwrap_or((core, ""));
    let numbers: Vec<&str> = core.split('.').collect();
    let numeric = |n: &&str| {
        !n.is_empty()
            && n.bytes().all(|b| b.is_ascii_digit())
            && (n.len() == 1 || !n.starts_with('0'))
    };
    numbers.len() == 3
        && numbers.iter().all(numeric)
        && pre.split('.').all(|p| {
            pre.is_empty()
                || (!p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        })
}

/// Whether a krew selector (matchLabels and matchExpressions on os/arch) takes os/arch.
fn selects(selector: &Value, os: &str, arch: &str) -> bool {
    let value = |key: &str| if key == "os" { os } else { arch };
    let labels = selector["matchLabels"].as_object().into_iter().flatten();
    let expressions = selector["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten();
    labels
        .map(|(k, v)| v.as_str() == Some(value(k)))
        .chain(expressions.map(|e| {
            let v = value(e["key"].as_str().unwrap_or_default());
            let values: Vec<&str> = e["values"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            match e["operator"].as_str() {
                Some("In") => values.contains(&v),
                Some("NotIn") => !values.contains(&v),
                _ => false,
            }
        }))
        .all(|ok| ok)
}

fn long_lines(text: &str, max: usize) -> Vec<&str> {
    // As krew's index: a longer line is fine when it is one word (a URL).
    text.lines()
        .filter(|l| l.len() > max && l.trim().contains(' '))
        .collect()
}

/// krew's rules; returns the platforms' entries by (os, arch).
fn validate(file: &Path, text: &str) -> Vec<((String, String), Value)> {
    let m = yaml(text);
    let name = file.file_stem().unwrap().to_str().unwrap();
    assert_eq!(file.extension().unwrap(), "yaml");
    assert_eq!(
        m["apiVersion"],
        "krew.googlecontainertools.github.com/v1alpha2"
    );
    assert_eq!(m["kind"], "Plugin");
    assert_eq!(
        m["metadata"]["name"], name,
        "the plugin is named after its file"
    );
    assert!(
        name.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    );
    let spec = &m["spec"];
    let version = spec["version"].as_str().unwrap();
    assert!(is_krew_semver(version), "{version}");
    assert_eq!(
        version,
        format!("v{}", env!("CARGO_PKG_VERSION")),
        "the workspace's version"
    );
    assert!(spec["homepage"].as_str().unwrap().starts_with("https://"));
    let short = spec["shortDescription"].as_str().unwrap();
    assert!(
        !short.is_empty() && short.len() <= 70 && !short.contains('\n'),
        "{short:?}"
    );
    let description = spec["description"].as_str().unwrap();
    let caveats = spec["caveats"].as_str().unwrap();
    assert!(long_lines(description, 80).is_empty(), "{description}");
    assert!(long_lines(caveats, 80).is_empty(), "{caveats}");
    assert!(caveats.contains("kubectl vbackup install"), "{caveats}");

    let platforms = spec["platforms"].as_array().unwrap();
    let mut entries = Vec::new();
    for p in platforms {
        let selector = &p["selector"];
        let labels = selector["matchLabels"].as_object();
        let expressions = selector["matchExpressions"].as_array();
        assert!(
            labels.is_some_and(|l| !l.is_empty()) || expressions.is_some_and(|e| !e.is_empty()),
            "empty selector: {p}"
        );
        let keys: BTreeSet<&str> = labels
            .into_iter()
            .flat_map(|l| l.keys().map(String::as_str))
            .chain(
                expressions
                    .into_iter()
                    .flatten()
                    .filter_map(|e| e["key"].as_str()),
            )
            .collect();
        assert!(keys.iter().all(|k| *k == "os" || *k == "arch"), "{p}");
        let sha = p["sha256"].as_str().unwrap();
        assert!(
            sha.len() == 64 && sha.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
            "sha256 {sha:?}"
        );
        let uri = p["uri"].as_str().unwrap();
        assert!(
            uri.starts_with("https://") && uri.contains(&format!("/{version}/")),
            "{uri}"
        );
        let bin = p["bin"].as_str().unwrap();
        let files = p["files"].as_array().unwrap();
        let from: Vec<&str> = files.iter().filter_map(|f| f["from"].as_str()).collect();
        assert!(from.contains(&bin) && from.contains(&"LICENSE"), "{p}");
        let selected: Vec<(&str, &str)> = KNOWN
            .iter()
            .copied()
            .filter(|(os, arch)| selects(selector, os, arch))
            .collect();
        assert_eq!(selected.len(), 1, "each entry is for one platform: {p}");
        let (os, arch) = selected[0];
        assert!(uri.ends_with(&format!("-{os}-{arch}.tar.gz")), "{uri}");
        entries.push(((os.to_string(), arch.to_string()), p.clone()));
    }
    // No platform is selected twice (krew would not know which to install).
    let mut seen = BTreeSet::new();
    for (key, _) in &entries {
        assert!(
            seen.insert(key.clone()),
            "overlapping selectors for {key:?}"
        );
    }
    let wanted: BTreeSet<(String, String)> = [
        ("linux", "amd64"),
        ("linux", "arm64"),
        ("darwin", "amd64"),
        ("darwin", "arm64"),
        ("windows", "amd64"),
    ]
    .iter()
    .map(|(o, a)| (o.to_string(), a.to_string()))
    .collect();
    assert_eq!(seen, wanted);
    entries
}

#[test]
fn the_krew_manifest_is_valid_and_its_archive_installs_a_plugin_kubectl_finds() {
    let checked_in = std::fs::read_to_string(MANIFEST).unwrap();
    validate(Path::new(MANIFEST), &checked_in);

    let host = Platform::host().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let built = package(
        Path::new(env!("CARGO_BIN_EXE_kubectl-vbackup")),
        Path::new(LICENSE),
        &dir.path().join("dist"),
        host,
    )
    .unwrap();
    let version = format!("v{}", env!("CARGO_PKG_VERSION"));
    let filled = fill_manifest(&checked_in, &version, host, &built.sha256).unwrap();
    let file = dir.path().join("vbackup.yaml");
    std::fs::write(&file, &filled).unwrap();
    let entries = validate(&file, &filled);

    // The host's entry names the archive by its own hash; nothing else changed.
    let archive = std::fs::read(&built.archive).unwrap();
    let sha: String = Sha256::digest(&archive)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let (_, entry) = entries
        .iter()
        .find(|((os, arch), _)| os == host.os && arch == host.arch)
        .unwrap();
    assert_eq!(entry["sha256"], sha.as_str());
    let changed: Vec<(&str, &str)> = checked_in
        .lines()
        .zip(filled.lines())
        .filter(|(a, b)| a != b)
        .collect();
    assert!(
        changed
            .iter()
            .all(|(a, _)| a.trim_start().starts_with("sha256:")),
        "{changed:?}"
    );
    assert!(changed.len() <= 1, "{changed:?}");
    // Reproducible: the same binary gives the same archive.
    let again = package(
        Path::new(env!("CARGO_BIN_EXE_kubectl-vbackup")),
        Path::new(LICENSE),
        &dir.path().join("again"),
        host,
    )
    .unwrap();
    assert_eq!(again.sha256, sha);

    // Unpacked as krew does (the archive, then each `files` entry into the install dir).
    let unpacked = dir.path().join("unpacked");
    let install = dir.path().join("bin");
    std::fs::create_dir_all(&unpacked).unwrap();
    std::fs::create_dir_all(&install).unwrap();
    let out = Command::new("tar")
        .arg("-xzf")
        .arg(&built.archive)
        .arg("-C")
        .arg(&unpacked)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in entry["files"].as_array().unwrap() {
        let from = f["from"].as_str().unwrap();
        assert_eq!(f["to"], ".");
        std::fs::rename(unpacked.join(from), install.join(from))
            .unwrap_or_else(|e| panic!("{from} is not in the archive: {e}"));
    }
    let bin = install.join(entry["bin"].as_str().unwrap());
    let license = std::fs::read_to_string(install.join("LICENSE")).unwrap();
    assert!(license.contains("Apache License") && license.contains("Version 2.0"));
    assert_eq!(
        std::fs::read(&bin).unwrap(),
        std::fs::read(env!("CARGO_BIN_EXE_kubectl-vbackup")).unwrap()
    );

    // kubectl finds it on PATH (a warning about another copy elsewhere is not a failure).
    let path = format!("{}:/usr/local/bin:/usr/bin:/bin", install.display());
    let list = Command::new("kubectl")
        .args(["plugin", "list"])
        .env("PATH", &path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&list.stdout);
    assert!(
        stdout
            .lines()
            .any(|l| l.trim() == bin.display().to_string()),
        "kubectl plugin list:\n{stdout}\n{}",
        String::from_utf8_lossy(&list.stderr)
    );
    let version_out = Command::new("kubectl")
        .args(["vbackup", "version", "--kubeconfig", "/nonexistent"])
        .env("PATH", &path)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&version_out.stdout)
            .contains(&format!("Client Version: {version}")),
        "{version_out:?}"
    );
}
