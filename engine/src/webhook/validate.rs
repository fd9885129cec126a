//! Warnings for malformed hook annotations (Velero's, vbackup's twins, K8up's): the pod is
//! admitted anyway, and kubectl shows the person who created it what to fix — before the
//! first backup finds out.

use k8s_openapi::api::core::v1::Pod;

/// Prefixes of exec-hook annotations: Velero's and vbackup's spelling of each.
const EXEC_HOOK_PREFIXES: [&str; 6] = [
    "pre.hook.backup.velero.io/",
    "post.hook.backup.velero.io/",
    "post.hook.restore.velero.io/",
    "pre.hook.backup.vbackup.io/",
    "post.hook.backup.vbackup.io/",
    "post.hook.restore.vbackup.io/",
];
/// Prefixes of restore init-container hook annotations.
const INIT_HOOK_PREFIXES: [&str; 2] = [
    "init.hook.restore.velero.io/",
    "init.hook.restore.vbackup.io/",
];
/// K8up's streaming backup command and the container it runs in.
const K8UP_COMMAND: &str = "k8up.io/backupcommand";
const K8UP_CONTAINER: &str = "k8up.io/backupcommand-container";

/// One warning per malformed hook annotation of `pod`, naming the annotation and the fix.
pub fn hook_annotation_warnings(pod: &Pod) -> Vec<String> {
    let Some(annotations) = pod.metadata.annotations.as_ref() else {
        return Vec::new();
    };
    let containers: Vec<&str> = pod
        .spec
        .iter()
        .flat_map(|s| &s.containers)
        .map(|c| c.name.as_str())
        .collect();
    let mut warnings = Vec::new();
    for (key, value) in annotations {
        let problem = if let Some(field) = strip_any(key, &EXEC_HOOK_PREFIXES) {
            match field {
                "container" => container_problem(value, &containers),
                "command" => command_problem(value),
                "on-error" => (!matches!(value.as_str(), "Continue" | "Fail"))
                    .then(|| "must be Continue or Fail".to_string()),
                "timeout" | "exec-timeout" | "wait-timeout" => duration_problem(value),
                _ => Some(
                    "is not a hook setting: use command, container, on-error or timeout \
                     (restore: exec-timeout, wait-timeout)"
                        .to_string(),
                ),
            }
        } else if let Some(field) = strip_any(key, &INIT_HOOK_PREFIXES) {
            match field {
                "container-image" | "container-name" => {
                    value.trim().is_empty().then(|| "must not be empty".to_string())
                }
                "command" => command_problem(value),
                _ => Some("is not a restore init hook setting: use container-image, container-name or command".to_string()),
            }
        } else if key == K8UP_COMMAND {
            value.trim().is_empty().then(|| {
                "must not be empty: give the command that writes the dump to stdout".to_string()
            })
        } else if key == K8UP_CONTAINER {
            container_problem(value, &containers)
        } else {
            None
        };
        if let Some(problem) = problem {
            warnings.push(format!("annotation {key}={value:?} {problem}"));
        }
    }
    warnings
}

fn strip_any<'a>(key: &'a str, prefixes: &[&str]) -> Option<&'a str> {
    prefixes.iter().find_map(|p| key.strip_prefix(p))
}

fn container_problem(value: &str, containers: &[&str]) -> Option<String> {
    (!containers.contains(&value)).then(|| {
        format!(
            "names no container of the pod: use one of {}",
            containers.join(", ")
        )
    })
}

/// Velero reads a command as a JSON array of strings when it starts with `[`, else as one
/// word.
fn command_problem(value: &str) -> Option<String> {
    let value = value.trim();
    if value.is_empty() {
        return Some(
            "must not be empty: give a command such as [\"/bin/sh\", \"-c\", \"...\"]".into(),
        );
    }
    if !value.starts_with('[') {
        return None;
    }
    match serde_json::from_str::<Vec<String>>(value) {
        Ok(words) if !words.is_empty() => None,
        Ok(_) => Some("is an empty command: give at least the program to run".into()),
        Err(e) => Some(format!(
            "is not a JSON array of strings ({e}): write it as [\"/bin/sh\", \"-c\", \"...\"]"
        )),
    }
}

/// A Go duration as Velero parses it: `30s`, `1m30s`, `2h`, `500ms`.
fn duration_problem(value: &str) -> Option<String> {
    let bad = || Some("is not a duration: write it like 30s, 5m or 1h30m".to_string());
    let mut rest = value.trim();
    if rest == "0" {
        return None;
    }
    if rest.is_empty() {
        return bad();
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if digits == 0 || rest[..digits].parse::<f64>().is_err() {
            return bad();
        }
        rest = &rest[digits..];
        let unit = ["ns", "us", "µs", "ms", "s", "m", "h"]
            .into_iter()
            // "ms" before "m" and "s": the longest unit that fits.
            .filter(|u| rest.starts_with(u))
            .max_by_key(|u| u.len());
        match unit {
            Some(u) => rest = &rest[u.len()..],
            None => return bad(),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(annotations: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "db-0", "annotations": annotations},
            "spec": {"containers": [{"name": "mariadb", "image": "mariadb:11"}]}
        }))
        .unwrap()
    }

    #[test]
    fn well_formed_hook_annotations_give_no_warning() {
        let p = pod(json!({
            "pre.hook.backup.velero.io/container": "mariadb",
            "pre.hook.backup.velero.io/command": "[\"/bin/sh\", \"-c\", \"mariadb -e 'FLUSH TABLES'\"]",
            "pre.hook.backup.velero.io/on-error": "Fail",
            "pre.hook.backup.velero.io/timeout": "1m30s",
            "post.hook.restore.vbackup.io/exec-timeout": "500ms",
            "k8up.io/backupcommand": "mariadb-dump --all-databases",
            "k8up.io/backupcommand-container": "mariadb",
            "app.kubernetes.io/note": "[not a hook"
        }));
        assert_eq!(hook_annotation_warnings(&p), Vec::<String>::new());
    }

    #[test]
    fn each_malformed_hook_annotation_is_named_with_its_fix() {
        let p = pod(json!({
            "pre.hook.backup.velero.io/container": "mysql",
            "pre.hook.backup.velero.io/command": "[\"/bin/sh\", \"-c\"",
            "post.hook.backup.vbackup.io/on-error": "ignore",
            "pre.hook.backup.velero.io/timeout": "30 seconds",
            "post.hook.backup.velero.io/comand": "x",
            "init.hook.restore.velero.io/container-image": " ",
            "k8up.io/backupcommand": "",
        }));
        let warnings = hook_annotation_warnings(&p);
        assert_eq!(warnings.len(), 7, "{warnings:#?}");
        let has = |key: &str, text: &str| {
            assert!(
                warnings.iter().any(|w| w.contains(key) && w.contains(text)),
                "no warning for {key} saying {text:?} in {warnings:#?}"
            )
        };
        has("pre.hook.backup.velero.io/container", "use one of mariadb");
        has("pre.hook.backup.velero.io/command", "JSON array of strings");
        has("post.hook.backup.vbackup.io/on-error", "Continue or Fail");
        has("pre.hook.backup.velero.io/timeout", "30s, 5m");
        has("post.hook.backup.velero.io/comand", "not a hook setting");
        has(
            "init.hook.restore.velero.io/container-image",
            "must not be empty",
        );
        has("k8up.io/backupcommand", "stdout");
    }

    #[test]
    fn go_durations_are_read_as_velero_reads_them() {
        for ok in ["0", "30s", "1m30s", "2h", "500ms", "1.5h", "10us"] {
            assert_eq!(duration_problem(ok), None, "{ok}");
        }
        for bad in ["", "30", "s", "1d", "-5s", "5 m"] {
            assert!(duration_problem(bad).is_some(), "{bad}");
        }
    }
}
