//! Warnings for malformed hook annotations (Velero's, vbackup's twins, K8up's): the pod is
//! admitted anyway, and kubectl shows the person who created it what to fix — before the
//! first backup finds out. The annotations are read by the same parser backups use.

use k8s_openapi::api::core::v1::Pod;

use crate::hooks::annotations::{PodAnnotations, When};
use crate::hooks::dump::{dump_request, restore_command};

/// One warning per malformed hook annotation of `pod`, naming the annotation and the fix.
pub fn hook_annotation_warnings(pod: &Pod) -> Vec<String> {
    let Some(map) = pod.metadata.annotations.as_ref() else {
        return Vec::new();
    };
    let name = pod
        .metadata
        .name
        .clone()
        .or_else(|| pod.metadata.generate_name.as_ref().map(|g| format!("{g}…")))
        .unwrap_or_default();
    let annotations = PodAnnotations {
        pod: format!("{}/{name}", pod.metadata.namespace.as_deref().unwrap_or("")),
        map,
    };
    let containers: Vec<&str> = pod
        .spec
        .iter()
        .flat_map(|s| {
            s.containers
                .iter()
                .chain(s.init_containers.iter().flatten())
        })
        .map(|c| c.name.as_str())
        .collect();
    let unknown_container = |origin: &str, container: &Option<String>| {
        container
            .as_deref()
            .filter(|c| !containers.contains(c))
            .map(|c| {
                format!(
                    "{origin}: container {c:?} is not in the pod: use one of {}",
                    containers.join(", ")
                )
            })
    };
    let mut warnings = Vec::new();
    for when in [When::Pre, When::Post] {
        let (hook, problems) = annotations.backup_hook(when);
        warnings.extend(problems.iter().map(ToString::to_string));
        if let Some(hook) = hook {
            warnings.extend(hook.command.err());
            warnings.extend(unknown_container(&hook.origin, &hook.container));
        }
    }
    let (restore, problems) = annotations.restore_hook();
    warnings.extend(problems.iter().map(ToString::to_string));
    if let Some(hook) = restore {
        warnings.extend(hook.exec.command.err());
        warnings.extend(unknown_container(&hook.exec.origin, &hook.exec.container));
    }
    let (_, problems) = annotations.init_hook();
    warnings.extend(problems.iter().map(ToString::to_string));
    if let Some(dump) = dump_request(map) {
        warnings.extend(dump.command.err());
        warnings.extend(unknown_container(
            &format!("annotation {}", dump.origin),
            &dump.container,
        ));
    }
    if let Some(Err(e)) = restore_command(map) {
        warnings.push(e);
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(annotations: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "db-0", "namespace": "app", "annotations": annotations},
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
            "post.hook.restore.vbackup.io/command": "[\"true\"]",
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
            "pre.hook.backup.velero.io/timeout": "30 seconds",
            "post.hook.backup.vbackup.io/on-error": "ignore",
            "init.hook.restore.velero.io/container-image": " ",
            "vbackup.io/backup-command": "[1]",
        }));
        let warnings = hook_annotation_warnings(&p);
        let has = |key: &str, text: &str| {
            assert!(
                warnings.iter().any(|w| w.contains(key) && w.contains(text)),
                "no warning for {key} saying {text:?} in {warnings:#?}"
            )
        };
        has("pre.hook.backup.velero.io/command", "use one of mariadb");
        has("pre.hook.backup.velero.io/command", "JSON array of strings");
        has("pre.hook.backup.velero.io/timeout", "30s, 5m");
        has("post.hook.backup.vbackup.io/on-error", "command is not");
        has("init.hook.restore.velero.io/container-image", "empty");
        has("vbackup.io/backup-command", "JSON array");
        assert_eq!(warnings.len(), 6, "{warnings:#?}");
    }
}
