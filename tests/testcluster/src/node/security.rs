//! A container's `securityContext` as the kubelet and containerd apply it: who the process
//! runs as (`runAsUser`, `runAsGroup`, `supplementalGroups`, `fsGroup`), the `runAsNonRoot`
//! refusal, capabilities (containerd's default set, `add`/`drop`, `privileged`),
//! `allowPrivilegeEscalation` (no_new_privs) and `readOnlyRootFilesystem`; and `fsGroup`
//! applied to volumes as the kubelet's `SetVolumeOwnership` does.
//!
//! Images stand for the host's filesystem, whose default user is root (uid 0, gid 0).

use super::objects::{self, s};
use super::sandbox::quote;
use serde_json::Value;
use std::path::Path;

/// containerd's default capabilities for a container (`oci.defaultUnixCaps`).
const RUNTIME_DEFAULT_CAPS: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

/// How one container's process is started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Process {
    /// User id (0 when the image's root).
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary groups (the primary group, `fsGroup`, `supplementalGroups`).
    pub groups: Vec<u32>,
    /// Capabilities in the bounding set (and, for root, the effective set); `None`: all.
    pub caps: Option<Vec<String>>,
    /// `prctl(PR_SET_NO_NEW_PRIVS)`.
    pub no_new_privs: bool,
    /// The root filesystem is mounted read-only (volumes keep their own mode).
    pub read_only_root: bool,
}

/// Why a container cannot be created (the kubelet's `CreateContainerConfigError`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

fn sc_of<'a>(pod: &'a Value, container: &'a Value) -> (&'a Value, &'a Value) {
    (
        pod.pointer("/spec/securityContext").unwrap_or(&Value::Null),
        container.get("securityContext").unwrap_or(&Value::Null),
    )
}

fn int(v: &Value, key: &str) -> Option<i64> {
    v.get(key).and_then(Value::as_i64)
}

fn flag(v: &Value, key: &str) -> Option<bool> {
    v.get(key).and_then(Value::as_bool)
}

/// `format.Pod` of the kubelet's messages: `name_namespace(uid)`.
fn pod_ref(pod: &Value) -> String {
    format!(
        "{}_{}({})",
        objects::name(pod),
        objects::namespace(pod),
        objects::uid(pod)
    )
}

/// The process of `container` (container settings win over the pod's), or the kubelet's
/// refusal (`verifyRunAsNonRoot`).
pub fn process(pod: &Value, container: &Value) -> Result<Process, Refused> {
    let (psc, csc) = sc_of(pod, container);
    let run_as_user = int(csc, "runAsUser").or(int(psc, "runAsUser"));
    let non_root = flag(csc, "runAsNonRoot").or(flag(psc, "runAsNonRoot")) == Some(true);
    let cname = s(container, "/name");
    if non_root {
        match run_as_user {
            Some(0) => {
                return Err(Refused(format!(
                    "container's runAsUser breaks non-root policy (pod: \"{}\", container: {cname})",
                    pod_ref(pod)
                )));
            }
            // The image's user is root.
            None => {
                return Err(Refused(format!(
                    "container has runAsNonRoot and image will run as root (pod: \"{}\", container: {cname})",
                    pod_ref(pod)
                )));
            }
            Some(_) => {}
        }
    }
    let uid = run_as_user.unwrap_or(0) as u32;
    let gid = int(csc, "runAsGroup")
        .or(int(psc, "runAsGroup"))
        .unwrap_or(0) as u32;
    let mut groups = vec![gid];
    groups.extend(int(psc, "fsGroup").map(|g| g as u32));
    groups.extend(
        psc.get("supplementalGroups")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_i64)
            .map(|g| g as u32),
    );
    groups.sort_unstable();
    groups.dedup();
    let privileged = flag(csc, "privileged") == Some(true);
    let caps = if privileged {
        None
    } else {
        Some(capabilities(
            csc.get("capabilities").unwrap_or(&Value::Null),
        ))
    };
    // The kubelet sets no_new_privs only when escalation is explicitly refused.
    let no_new_privs = !privileged && flag(csc, "allowPrivilegeEscalation") == Some(false);
    Ok(Process {
        uid,
        gid,
        groups,
        caps,
        no_new_privs,
        read_only_root: flag(csc, "readOnlyRootFilesystem") == Some(true),
    })
}

/// containerd's CRI order: `add: [ALL]` grants all, `drop: [ALL]` clears, then the single
/// additions, then the single drops, over the runtime's default set.
fn capabilities(caps: &Value) -> Vec<String> {
    let list = |k: &str| -> Vec<String> {
        caps.get(k)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(|c| c.trim_start_matches("CAP_").to_ascii_uppercase())
            .collect()
    };
    let (add, drop) = (list("add"), list("drop"));
    let mut set: Vec<String> = RUNTIME_DEFAULT_CAPS.iter().map(|c| c.to_string()).collect();
    if add.iter().any(|c| c == "ALL") {
        set = all_caps();
    }
    if drop.iter().any(|c| c == "ALL") {
        set.clear();
    }
    for c in add.iter().filter(|c| *c != "ALL") {
        if !set.contains(c) {
            set.push(c.clone());
        }
    }
    set.retain(|c| !drop.contains(c));
    set
}

/// Every capability `setpriv` knows.
fn all_caps() -> Vec<String> {
    std::process::Command::new("/usr/bin/setpriv")
        .arg("--list-caps")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(|l| l.trim().to_ascii_uppercase())
                .filter(|l| !l.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

impl Process {
    /// The `setpriv` argv prefix that turns a root shell into this process.
    pub fn setpriv(&self) -> Vec<String> {
        let mut a = vec!["/usr/bin/setpriv".to_string()];
        if self.no_new_privs {
            a.push("--no-new-privs".into());
        }
        if let Some(caps) = &self.caps {
            let list: String = std::iter::once("-all".to_string())
                .chain(caps.iter().map(|c| format!("+{}", c.to_ascii_lowercase())))
                .collect::<Vec<_>>()
                .join(",");
            a.extend(["--bounding-set".into(), list]);
        }
        // containerd leaves the inheritable and ambient sets empty: a non-root process has
        // no effective capability, root has exactly its bounding set.
        a.extend(["--inh-caps".into(), "-all".into()]);
        a.extend(["--ambient-caps".into(), "-all".into()]);
        a.extend([
            "--regid".into(),
            self.gid.to_string(),
            "--groups".into(),
            self.groups
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(","),
            "--reuid".into(),
            self.uid.to_string(),
            "--".into(),
        ]);
        a
    }

    /// The same prefix, quoted for a shell script.
    pub fn setpriv_shell(&self) -> String {
        self.setpriv()
            .iter()
            .map(|a| quote(a))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

const RW_MASK: u32 = 0o660;
const RO_MASK: u32 = 0o440;
const EXEC_MASK: u32 = 0o110;
const SETGID: u32 = 0o2000;

/// Whether the kubelet changes a volume's ownership for `fsGroup`: emptyDir, ConfigMap,
/// Secret, downward API and projected volumes always; CSI volumes under the default
/// `ReadWriteOnceWithFSType` policy when they have an fsType, a ReadWriteOnce access mode
/// and are not mounted read-only; hostPath and others never.
fn owned_by_fs_group(api: &crate::api::Api, ns: &str, volume: &Value) -> Option<bool> {
    for (kind, read_only) in [
        ("emptyDir", false),
        ("configMap", true),
        ("secret", true),
        ("downwardAPI", true),
        ("projected", true),
    ] {
        if volume.get(kind).is_some() {
            return Some(read_only);
        }
    }
    let pvc = volume.get("persistentVolumeClaim")?;
    if flag(pvc, "readOnly") == Some(true) {
        return None;
    }
    let claim = objects::get(api, "", "persistentvolumeclaims", ns, s(pvc, "/claimName"))?;
    let pv = objects::get(
        api,
        "",
        "persistentvolumes",
        "",
        s(&claim, "/spec/volumeName"),
    )?;
    let rwo = pv
        .pointer("/spec/accessModes")
        .and_then(Value::as_array)
        .is_some_and(|m| m.iter().any(|m| m == "ReadWriteOnce"));
    (pv.pointer("/spec/csi").is_some() && !s(&pv, "/spec/csi/fsType").is_empty() && rwo)
        .then_some(false)
}

/// Applies the pod's `fsGroup` to the host directories of its volumes, as the kubelet does
/// before starting containers (honouring `fsGroupChangePolicy: OnRootMismatch`).
pub fn apply_fs_group(
    api: &crate::api::Api,
    pod: &Value,
    dirs: &std::collections::HashMap<String, std::path::PathBuf>,
) -> std::io::Result<()> {
    let Some(group) = pod
        .pointer("/spec/securityContext/fsGroup")
        .and_then(Value::as_i64)
    else {
        return Ok(());
    };
    let group = group as u32;
    let on_mismatch = s(pod, "/spec/securityContext/fsGroupChangePolicy") == "OnRootMismatch";
    for v in pod
        .pointer("/spec/volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(dir) = dirs.get(s(v, "/name")) else {
            continue;
        };
        let Some(read_only) = owned_by_fs_group(api, objects::namespace(pod), v) else {
            continue;
        };
        if on_mismatch && !needs_change(dir, group, read_only) {
            continue;
        }
        set_ownership(dir, group, read_only)?;
    }
    Ok(())
}

/// The kubelet's `requiresPermissionChange`: the root's group, its permissions and setgid.
fn needs_change(root: &Path, group: u32, read_only: bool) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(m) = std::fs::metadata(root) else {
        return true;
    };
    let want = if read_only { RO_MASK } else { RW_MASK } | EXEC_MASK;
    m.gid() != group || !m.is_dir() || m.mode() & want != want || m.mode() & SETGID == 0
}

/// Walks `root` without following links: group `group`, `g+rw` (`g+r` read-only), and
/// `g+x` plus setgid on directories.
fn set_ownership(root: &Path, group: u32, read_only: bool) -> std::io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = std::fs::symlink_metadata(root)?;
    std::os::unix::fs::lchown(root, None, Some(group))?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    let mut mask = if read_only { RO_MASK } else { RW_MASK };
    if meta.is_dir() {
        mask |= SETGID | EXEC_MASK;
    }
    std::fs::set_permissions(
        root,
        std::fs::Permissions::from_mode((meta.mode() & 0o7777) | mask),
    )?;
    if meta.is_dir() {
        for entry in std::fs::read_dir(root)? {
            set_ownership(&entry?.path(), group, read_only)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn container_settings_win_and_groups_collect_fs_and_supplemental_groups() {
        let pod = json!({"metadata": {"name": "p", "namespace": "ns", "uid": "u"}, "spec": {
            "securityContext": {"runAsUser": 1000, "runAsGroup": 3000, "fsGroup": 2000,
                                "supplementalGroups": [4000]}}});
        let c = json!({"name": "c", "securityContext": {"runAsUser": 1001}});
        let p = process(&pod, &c).unwrap();
        assert_eq!((p.uid, p.gid), (1001, 3000));
        assert_eq!(p.groups, vec![2000, 3000, 4000]);
        assert_eq!(p.caps.as_ref().unwrap().len(), RUNTIME_DEFAULT_CAPS.len());
    }

    #[test]
    fn run_as_non_root_refuses_the_images_root_user_with_the_kubelets_message() {
        let pod = json!({"metadata": {"name": "p", "namespace": "ns", "uid": "u"},
            "spec": {"securityContext": {"runAsNonRoot": true}}});
        let err = process(&pod, &json!({"name": "c"})).unwrap_err();
        assert_eq!(
            err.0,
            "container has runAsNonRoot and image will run as root (pod: \"p_ns(u)\", container: c)"
        );
        let c = json!({"name": "c", "securityContext": {"runAsUser": 0}});
        assert!(process(&pod, &c).unwrap_err().0.contains("breaks non-root"));
        let c = json!({"name": "c", "securityContext": {"runAsUser": 5}});
        assert_eq!(process(&pod, &c).unwrap().uid, 5);
    }

    #[test]
    fn capabilities_follow_containerds_add_and_drop_order() {
        let caps = capabilities(&json!({"drop": ["ALL"], "add": ["DAC_READ_SEARCH"]}));
        assert_eq!(caps, vec!["DAC_READ_SEARCH"]);
        let caps = capabilities(&json!({"drop": ["NET_RAW", "CAP_KILL"]}));
        assert!(!caps.contains(&"NET_RAW".to_string()) && !caps.contains(&"KILL".to_string()));
        assert!(caps.contains(&"CHOWN".to_string()));
    }
}
