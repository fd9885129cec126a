//! A pod's private filesystem view: a process started in its own mount (and UTS) namespace
//! with a fresh tmpfs root holding the host's system directories, the pod's volumes at
//! their mount paths and per-container files, then `chroot`ed into it.
//!
//! The host's system directories (`/usr`, `/etc`, `/var`, `/opt`...) appear as overlays with
//! a throw-away upper layer, so pods see the host's programs, may create mount points and
//! write anywhere, and leave the host untouched.
//!
//! The set-up is a small shell script run by util-linux `unshare`, so nothing is mounted in
//! the host's namespace: the root and every mount point live in a tmpfs that disappears
//! with the namespace, and the host directory used as the root's mount point stays empty.

use std::path::{Path, PathBuf};

/// Host directories every pod sees (symlinks such as `/bin -> usr/bin` are copied).
const SYSTEM_DIRS: &[&str] = &[
    "usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc", "opt", "var",
];

/// Device nodes bound from the host's `/dev` into the pod's own `/dev`.
const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// One bind mount into the pod's root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    /// Host path (directory or file).
    pub source: PathBuf,
    /// Absolute path inside the pod.
    pub target: String,
    /// Mounted read-only.
    pub read_only: bool,
    /// A single file rather than a directory.
    pub file: bool,
}

/// Everything needed to start a process in a pod's filesystem view.
#[derive(Debug, Clone)]
pub struct Sandbox {
    /// An empty host directory the namespace mounts its tmpfs root on.
    pub root_mountpoint: PathBuf,
    /// Volumes and files, mounted parents first.
    pub binds: Vec<Bind>,
    /// The pod's hostname (its name, as the kubelet sets it).
    pub hostname: String,
    /// Working directory inside the pod (`/` when empty).
    pub working_dir: String,
    /// A host file that receives `ok` once the process runs inside the finished root, so
    /// `pods/exec` never enters a half-built namespace.
    pub ready_file: Option<PathBuf>,
    /// The pod's network namespace (`nsenter --net=`); the host's for `hostNetwork` pods.
    pub netns: Option<PathBuf>,
}

/// Where the ready file appears inside the root.
const READY: &str = "/.testnode/ready";

/// Quotes a string for a POSIX shell.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Where `target` really is in the pod's root: symbolic links in the directories mirrored
/// from the host (`/var/run -> /run`, `/lib -> usr/lib`) are followed inside the root, so a
/// mount point is never created through a link that would lead out of it.
pub fn resolve_in_root(target: &str) -> String {
    let mut todo: std::collections::VecDeque<String> = Path::new(target)
        .components()
        .filter_map(|c| match c {
            std::path::Component::Normal(n) => Some(n.to_string_lossy().into_owned()),
            std::path::Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    let mut done: Vec<String> = Vec::new();
    let mut hops = 0;
    while let Some(part) = todo.pop_front() {
        if part == ".." {
            done.pop();
            continue;
        }
        done.push(part);
        let mirrored = SYSTEM_DIRS.contains(&done[0].as_str());
        if !mirrored {
            continue;
        }
        let host = format!("/{}", done.join("/"));
        if let Ok(link) = std::fs::read_link(&host) {
            hops += 1;
            if hops > 40 {
                break;
            }
            done.pop();
            if link.is_absolute() {
                done.clear();
            }
            let parts: Vec<String> = link
                .components()
                .filter_map(|c| match c {
                    std::path::Component::Normal(n) => Some(n.to_string_lossy().into_owned()),
                    std::path::Component::ParentDir => Some("..".into()),
                    _ => None,
                })
                .collect();
            for p in parts.into_iter().rev() {
                todo.push_front(p);
            }
        }
    }
    format!("/{}", done.join("/"))
}

fn depth(target: &str) -> usize {
    Path::new(target).components().count()
}

impl Sandbox {
    /// The set-up script; the command to run comes as its positional parameters.
    pub fn script(&self) -> String {
        let r = quote(&self.root_mountpoint.to_string_lossy());
        let mut s = String::new();
        s.push_str("set -e\n");
        s.push_str(&format!("R={r}\n"));
        s.push_str("/usr/bin/mount -t tmpfs -o mode=0755 vbackup-pod \"$R\"\n");
        for d in SYSTEM_DIRS {
            let host = Path::new("/").join(d);
            let Ok(meta) = std::fs::symlink_metadata(&host) else {
                continue;
            };
            if meta.file_type().is_symlink() {
                if let Ok(to) = std::fs::read_link(&host) {
                    s.push_str(&format!(
                        "/usr/bin/ln -s {} \"$R/{d}\"\n",
                        quote(&to.to_string_lossy())
                    ));
                }
            } else if meta.is_dir() {
                // Copy-on-write over the host's directory, like an image layer: the pod can
                // create mount points (/var/lib/postgresql/data, /etc/config) and write,
                // and every change vanishes with the namespace.
                let layer = format!("\"$R/.testnode/layers/{d}\"");
                s.push_str(&format!(
                    "/usr/bin/mkdir -p {layer}/upper {layer}/work \"$R/{d}\"\n/usr/bin/mount -t overlay overlay -o \"lowerdir=/{d},upperdir=$R/.testnode/layers/{d}/upper,workdir=$R/.testnode/layers/{d}/work\" \"$R/{d}\"\n"
                ));
            }
        }
        // A container's /tmp is its own, as in an image's filesystem: host files reach pods
        // only through volumes (hostPath for a filesystem backup location).
        s.push_str(
            "/usr/bin/mkdir \"$R/tmp\" \"$R/proc\" \"$R/sys\" \"$R/dev\" \"$R/root\" \"$R/run\"\n",
        );
        s.push_str("/usr/bin/mount -t tmpfs -o mode=1777 vbackup-tmp \"$R/tmp\"\n");
        s.push_str("/usr/bin/mount --rbind /proc \"$R/proc\"\n");
        s.push_str("/usr/bin/mount --rbind /sys \"$R/sys\"\n");
        s.push_str("/usr/bin/mount -o remount,bind,ro \"$R/sys\"\n");
        s.push_str("/usr/bin/mount -t tmpfs -o mode=0755 vbackup-dev \"$R/dev\"\n");
        for d in DEVICES {
            s.push_str(&format!(
                "if [ -e /dev/{d} ]; then /usr/bin/touch \"$R/dev/{d}\"; /usr/bin/mount --bind /dev/{d} \"$R/dev/{d}\"; fi\n"
            ));
        }
        s.push_str("/usr/bin/ln -s /proc/self/fd \"$R/dev/fd\"\n");
        for (i, n) in ["stdin", "stdout", "stderr"].iter().enumerate() {
            s.push_str(&format!(
                "/usr/bin/ln -s /proc/self/fd/{i} \"$R/dev/{n}\"\n"
            ));
        }
        s.push_str("/usr/bin/mkdir \"$R/dev/shm\"\n/usr/bin/mount -t tmpfs -o mode=1777 shm \"$R/dev/shm\"\n");
        let mut binds = self.binds.clone();
        if let Some(r) = &self.ready_file {
            binds.push(Bind {
                source: r.clone(),
                target: READY.into(),
                read_only: false,
                file: true,
            });
        }
        for b in &mut binds {
            b.target = resolve_in_root(&b.target);
        }
        binds.sort_by_key(|b| depth(&b.target));
        for b in &binds {
            let src = quote(&b.source.to_string_lossy());
            let dst = format!("\"$R\"{}", quote(&b.target));
            if b.file {
                let parent = Path::new(&b.target)
                    .parent()
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "/".into());
                s.push_str(&format!(
                    "/usr/bin/mkdir -p \"$R\"{}\n/usr/bin/touch {dst}\n",
                    quote(&parent)
                ));
            } else {
                s.push_str(&format!("/usr/bin/mkdir -p {dst}\n"));
            }
            s.push_str(&format!("/usr/bin/mount --bind {src} {dst}\n"));
            if b.read_only {
                s.push_str(&format!("/usr/bin/mount -o remount,bind,ro {dst}\n"));
            }
        }
        s.push_str(&format!(
            "echo {} > /proc/sys/kernel/hostname\n",
            quote(&self.hostname)
        ));
        let wd = if self.working_dir.is_empty() {
            "/".to_string()
        } else {
            self.working_dir.clone()
        };
        if self.ready_file.is_some() {
            let inner = format!("echo ok > {READY}; exec /usr/bin/env -C \"$0\" -- \"$@\"");
            s.push_str(&format!(
                "exec /usr/sbin/chroot \"$R\" /bin/sh -c {} {} \"$@\"\n",
                quote(&inner),
                quote(&wd)
            ));
        } else {
            s.push_str(&format!(
                "exec /usr/sbin/chroot \"$R\" /usr/bin/env -C {} -- \"$@\"\n",
                quote(&wd)
            ));
        }
        s
    }

    /// A command that runs `argv` inside the namespaces and root of the running process
    /// `pid` (a container), with exactly `env` set: `pods/exec`.
    pub fn enter(pid: u32, argv: &[String], env: &[(String, String)]) -> tokio::process::Command {
        let mut c = tokio::process::Command::new("/usr/bin/setpriv");
        c.args(["--pdeathsig", "KILL", "--", "/usr/bin/nsenter"])
            .args([
                "--target",
                &pid.to_string(),
                "--mount",
                "--uts",
                "--net",
                "--root",
                "--wd",
                "--",
            ])
            .args(argv)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .process_group(0)
            .kill_on_drop(true);
        c
    }

    /// A command that runs `argv` in the sandbox with exactly `env` set.
    pub fn command(&self, argv: &[String], env: &[(String, String)]) -> tokio::process::Command {
        // setpriv: the pod's process dies with the thread that started it, so a killed
        // test cluster leaves no pods behind.
        let mut c = tokio::process::Command::new("/usr/bin/setpriv");
        c.args(["--pdeathsig", "KILL", "--"]);
        if let Some(ns) = &self.netns {
            c.arg("/usr/bin/nsenter")
                .arg(format!("--net={}", ns.display()))
                .arg("--");
        }
        c.arg("/usr/bin/unshare")
            .args([
                "--mount",
                "--uts",
                "--propagation",
                "private",
                "--",
                "/bin/sh",
                "-c",
            ])
            .arg(self.script())
            .arg("vbackup-pod")
            .args(argv)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .process_group(0)
            .kill_on_drop(true);
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_points_follow_host_links_inside_the_root() {
        assert_eq!(resolve_in_root("/data/x/../y"), "/data/y");
        if std::fs::read_link("/var/run").is_ok_and(|l| l == Path::new("/run")) {
            assert_eq!(
                resolve_in_root("/var/run/secrets/kubernetes.io/serviceaccount"),
                "/run/secrets/kubernetes.io/serviceaccount"
            );
        }
        if std::fs::read_link("/lib").is_ok_and(|l| l == Path::new("usr/lib")) {
            assert_eq!(resolve_in_root("/lib/x"), "/usr/lib/x");
        }
    }

    #[test]
    fn quote_survives_single_quotes() {
        assert_eq!(quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn script_mounts_parents_before_children_and_remounts_read_only() {
        let sb = Sandbox {
            root_mountpoint: "/state/rootfs".into(),
            binds: vec![
                Bind {
                    source: "/v/b".into(),
                    target: "/data/sub".into(),
                    read_only: true,
                    file: false,
                },
                Bind {
                    source: "/v/a".into(),
                    target: "/data".into(),
                    read_only: false,
                    file: false,
                },
            ],
            hostname: "web-0".into(),
            working_dir: String::new(),
            ready_file: None,
            netns: None,
        };
        let s = sb.script();
        let a = s.find("--bind '/v/a'").unwrap();
        let b = s.find("--bind '/v/b'").unwrap();
        assert!(a < b, "{s}");
        assert!(s.contains("remount,bind,ro \"$R\"'/data/sub'"), "{s}");
        assert!(!s.contains("remount,bind,ro \"$R\"'/data'\n"), "{s}");
    }
}
