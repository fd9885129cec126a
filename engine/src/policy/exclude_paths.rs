//! Paths inside a volume that are not copied: vbackup's `vbackup.io/exclude-paths` PVC
//! annotation (gitignore-style globs, comma separated) and the `--exclude` values of K8up's
//! `k8up.io/backup-restic-args`, so claims annotated for K8up keep their excludes.
//!
//! The result is a list of gitignore-style patterns relative to the volume's root.

use std::collections::BTreeMap;

use super::annotations::{EXCLUDE_PATHS, K8UP_RESTIC_ARGS, list};

/// The excludes of one claim, and what could not be used (each a warning for the backup).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ExcludePaths {
    /// gitignore-style patterns relative to the volume root (`/x` anchored, `x` anywhere).
    pub patterns: Vec<String>,
    /// Values that were ignored, and why.
    pub warnings: Vec<String>,
}

/// Reads the excludes of claim `claim` from its annotations.
pub fn for_claim(claim: &str, annotations: &BTreeMap<String, String>) -> ExcludePaths {
    let mut out = ExcludePaths::default();
    if let Some(value) = annotations.get(EXCLUDE_PATHS) {
        for pattern in list(value) {
            if pattern.starts_with('!') {
                out.warnings.push(format!(
                    "{EXCLUDE_PATHS} on claim {claim}: {pattern:?} ignored: re-including paths \
                     with `!` is not supported; list only what to leave out"
                ));
            } else {
                out.patterns.push(pattern.to_string());
            }
        }
    }
    if let Some(value) = annotations.get(K8UP_RESTIC_ARGS) {
        k8up_excludes(claim, value, &mut out);
    }
    out
}

/// K8up mounts a claim at `/data/<claim>` and passes these arguments to restic, whose
/// exclude patterns match anywhere unless they start with `/`.
fn k8up_excludes(claim: &str, value: &str, out: &mut ExcludePaths) {
    let args: Vec<String> = match serde_json::from_str(value) {
        Ok(args) => args,
        Err(e) => {
            // K8up skips such a claim entirely; copying it whole loses nothing.
            out.warnings.push(format!(
                "{K8UP_RESTIC_ARGS} on claim {claim} is not a JSON array of strings ({e}): its \
                 excludes are ignored and the whole volume is copied; write e.g. \
                 '[\"--exclude=cache\"]'"
            ));
            return;
        }
    };
    let mount = format!("/data/{claim}");
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let pattern = match arg.as_str() {
            "--exclude" | "-e" => match args.next() {
                Some(p) => p,
                None => break,
            },
            a => match a.strip_prefix("--exclude=") {
                Some(p) => p.to_string(),
                None => {
                    out.warnings.push(format!(
                        "{K8UP_RESTIC_ARGS} on claim {claim}: argument {a:?} ignored (only \
                         --exclude is used by vbackup)"
                    ));
                    continue;
                }
            },
        };
        if let Some(rest) = pattern.strip_prefix(&mount) {
            if rest.is_empty() || rest == "/" {
                out.warnings.push(format!(
                    "{K8UP_RESTIC_ARGS} on claim {claim}: --exclude {pattern:?} names the whole \
                     volume and is ignored; annotate the pod with \
                     backup.velero.io/backup-volumes-excludes to skip a volume"
                ));
            } else {
                out.patterns.push(rest.to_string());
            }
        } else if pattern.starts_with('/') {
            out.warnings.push(format!(
                "{K8UP_RESTIC_ARGS} on claim {claim}: --exclude {pattern:?} is outside the \
                 claim's K8up mount {mount} and matches nothing"
            ));
        } else if pattern.contains('/') {
            // restic matches a relative pattern at any depth; gitignore anchors it unless told.
            out.patterns.push(format!("**/{pattern}"));
        } else {
            out.patterns.push(pattern);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn vbackup_globs_are_taken_as_written() {
        let e = for_claim(
            "data",
            &annotations(&[(EXCLUDE_PATHS, "cache/, *.tmp ,/logs")]),
        );
        assert_eq!(e.patterns, ["cache/", "*.tmp", "/logs"]);
        assert!(e.warnings.is_empty());
    }

    #[test]
    fn k8up_excludes_are_rebased_onto_the_volume_root() {
        let e = for_claim(
            "grafana",
            &annotations(&[(
                K8UP_RESTIC_ARGS,
                r#"["--exclude=/data/grafana/plugins", "--exclude", "denpa.db*", "--exclude=a/b", "--one-file-system"]"#,
            )]),
        );
        assert_eq!(e.patterns, ["/plugins", "denpa.db*", "**/a/b"]);
        assert_eq!(e.warnings.len(), 1, "{:?}", e.warnings);
        assert!(e.warnings[0].contains("--one-file-system"));
    }

    #[test]
    fn malformed_k8up_args_copy_the_whole_volume_with_a_warning() {
        let e = for_claim("x", &annotations(&[(K8UP_RESTIC_ARGS, "--exclude=cache")]));
        assert!(e.patterns.is_empty());
        assert!(
            e.warnings[0].contains("not a JSON array"),
            "{:?}",
            e.warnings
        );
    }

    #[test]
    fn reinclusion_and_foreign_paths_are_warnings() {
        let e = for_claim(
            "x",
            &annotations(&[
                (EXCLUDE_PATHS, "!keep"),
                (
                    K8UP_RESTIC_ARGS,
                    r#"["--exclude=/data/other/file", "--exclude=/data/x"]"#,
                ),
            ]),
        );
        assert!(e.patterns.is_empty());
        assert_eq!(e.warnings.len(), 3, "{:?}", e.warnings);
    }
}
