//! Images as the node sees them: a mapped image is a local binary (its entrypoint) or a
//! directory of binaries (a container's `command[0]` is looked up there, as a runtime looks
//! it up in the image's filesystem); an image declared unpullable fails its pull the way
//! containerd and the kubelet report it (`ErrImagePull`, then `ImagePullBackOff`).

use super::podenv;
use super::sandbox::Bind;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Where a mapped binary appears inside the pod.
pub const ENTRYPOINT: &str = "/.testnode/entrypoint";
/// Where a mapped directory appears inside the pod.
pub const IMAGE_DIR: &str = "/.testnode/image";

/// The full reference a runtime pulls: `nginx` is `docker.io/library/nginx:latest`.
pub fn normalized(image: &str) -> String {
    let (name, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    let first = name.split('/').next().unwrap_or_default();
    let has_domain =
        name.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let mut full = if has_domain {
        name.to_string()
    } else if name.contains('/') {
        format!("docker.io/{name}")
    } else {
        format!("docker.io/library/{name}")
    };
    let last = full.rsplit('/').next().unwrap_or_default();
    match digest {
        Some(d) => format!("{full}@{d}"),
        None => {
            if !last.contains(':') {
                full.push_str(":latest");
            }
            full
        }
    }
}

/// containerd's answer (through the CRI) when an image cannot be pulled.
pub fn pull_error(image: &str) -> String {
    let r = normalized(image);
    format!(
        "rpc error: code = NotFound desc = failed to pull and unpack image \"{r}\": failed to resolve reference \"{r}\": {r}: not found"
    )
}

/// Whether `image` starts with one of the unpullable prefixes.
pub fn unpullable(prefixes: &[String], image: &str) -> bool {
    prefixes.iter().any(|p| image.starts_with(p.as_str()))
}

/// The argv and the bind of a container whose image maps to `path` (a binary or a
/// directory); `Err` is the runtime's start failure (`StartError`, exit code 128).
pub fn command(
    path: &Path,
    container: &Value,
    env: &[(String, String)],
) -> Result<(Bind, Vec<String>), String> {
    let list = |k: &str| -> Vec<String> {
        container
            .get(k)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(|a| podenv::expand(a, env))
            .collect()
    };
    let (command, args) = (list("command"), list("args"));
    if !path.is_dir() {
        // The binary is the image's entrypoint, replaced by nothing but its arguments.
        let mut argv = vec![ENTRYPOINT.to_string()];
        argv.extend(command.into_iter().skip(1));
        argv.extend(args);
        let bind = Bind {
            source: path.to_path_buf(),
            target: ENTRYPOINT.into(),
            read_only: true,
            file: true,
        };
        return Ok((bind, argv));
    }
    // A directory image has no entrypoint: `command`, else `args`, names the program.
    let mut argv: Vec<String> = command.into_iter().chain(args).collect();
    let Some(program) = argv.first().cloned() else {
        return Err(runtime_error("exec: no command specified"));
    };
    let name = Path::new(&program)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let found: PathBuf = path.join(&name);
    if name.is_empty() || !found.is_file() {
        let why = if program.contains('/') {
            format!("exec: \"{program}\": stat {program}: no such file or directory")
        } else {
            format!("exec: \"{program}\": executable file not found in $PATH")
        };
        return Err(runtime_error(&why));
    }
    argv[0] = format!("{IMAGE_DIR}/{name}");
    let bind = Bind {
        source: path.to_path_buf(),
        target: IMAGE_DIR.into(),
        read_only: true,
        file: false,
    };
    Ok((bind, argv))
}

/// runc's failure as the kubelet reports it in `state.terminated.message`.
fn runtime_error(why: &str) -> String {
    format!(
        "failed to create containerd task: failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: error during container init: {why}: unknown"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_mapped_binary_replaces_the_entrypoint_and_keeps_arguments() {
        let c = json!({"command": ["/mover", "backup"], "args": ["--to", "$(DEST)"]});
        let env = vec![("DEST".to_string(), "s3".to_string())];
        let (bind, argv) = command(Path::new("/bin/sh"), &c, &env).unwrap();
        assert_eq!(argv, vec![ENTRYPOINT, "backup", "--to", "s3"]);
        assert_eq!(bind.target, ENTRYPOINT);
        let (_, argv) =
            command(Path::new("/bin/sh"), &json!({"args": ["-c", "true"]}), &[]).unwrap();
        assert_eq!(argv, vec![ENTRYPOINT, "-c", "true"]);
    }

    #[test]
    fn a_directory_image_looks_up_command_zero_and_fails_to_start_without_it() {
        let c = json!({"command": ["/usr/bin/true", "x"]});
        let (bind, argv) = command(Path::new("/usr/bin"), &c, &[]).unwrap();
        assert_eq!(argv, vec![format!("{IMAGE_DIR}/true"), "x".to_string()]);
        assert_eq!(bind.source, Path::new("/usr/bin"));
        let err = command(
            Path::new("/usr/bin"),
            &json!({"command": ["no-such-tool"]}),
            &[],
        )
        .unwrap_err();
        assert!(
            err.contains("exec: \"no-such-tool\": executable file not found in $PATH"),
            "{err}"
        );
    }

    #[test]
    fn references_normalize_as_docker_does() {
        assert_eq!(normalized("nginx"), "docker.io/library/nginx:latest");
        assert_eq!(normalized("bitnami/redis:7"), "docker.io/bitnami/redis:7");
        assert_eq!(
            normalized("ghcr.io/vbackup/vbackup:1.0"),
            "ghcr.io/vbackup/vbackup:1.0"
        );
        assert_eq!(normalized("localhost:5000/x"), "localhost:5000/x:latest");
    }
}
