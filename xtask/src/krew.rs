//! The krew package: a tar.gz of `kubectl-vbackup` and the LICENSE for one platform, and its
//! sha256 and the workspace's version written into `krew/vbackup.yaml`.
//!
//! The archive is reproducible (fixed order, modes, owners and times): the same binary always
//! gives the same sha256, so a manifest can be checked against a rebuilt archive.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use flate2::Compression;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};

/// A platform as krew's selectors name it (`os`, `arch`: Go's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Platform {
    /// `linux`, `darwin` or `windows`.
    pub os: &'static str,
    /// `amd64` or `arm64`.
    pub arch: &'static str,
}

impl Platform {
    /// The platform this program runs on.
    pub fn host() -> Result<Platform> {
        let os = match std::env::consts::OS {
            "linux" => "linux",
            "macos" => "darwin",
            "windows" => "windows",
            other => bail!("krew has no package for OS {other}"),
        };
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => bail!("krew has no package for architecture {other}"),
        };
        Ok(Platform { os, arch })
    }

    /// The plugin's file name on this platform.
    pub fn bin(self) -> &'static str {
        if self.os == "windows" {
            "kubectl-vbackup.exe"
        } else {
            "kubectl-vbackup"
        }
    }

    /// The archive's file name (the last part of its release URI).
    pub fn archive_name(self) -> String {
        format!("kubectl-vbackup-{}-{}.tar.gz", self.os, self.arch)
    }
}

/// A built archive.
#[derive(Debug, Clone)]
pub struct Package {
    /// Where it was written.
    pub archive: PathBuf,
    /// Its sha256, lowercase hex.
    pub sha256: String,
}

/// Writes `out_dir/<archive name>` holding `binary` (as the platform's bin, mode 0755) and
/// `license` (as `LICENSE`).
pub fn package(
    binary: &Path,
    license: &Path,
    out_dir: &Path,
    platform: Platform,
) -> Result<Package> {
    std::fs::create_dir_all(out_dir)
        .with_context(|| format!("cannot create {}", out_dir.display()))?;
    let archive = out_dir.join(platform.archive_name());
    let file =
        File::create(&archive).with_context(|| format!("cannot create {}", archive.display()))?;
    let mut tar = tar::Builder::new(GzEncoder::new(BufWriter::new(file), Compression::default()));
    for (source, name, mode) in [(binary, platform.bin(), 0o755), (license, "LICENSE", 0o644)] {
        let data =
            std::fs::read(source).with_context(|| format!("cannot read {}", source.display()))?;
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(mode);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, name, data.as_slice())
            .with_context(|| format!("cannot add {name} to {}", archive.display()))?;
    }
    let mut writer = tar.into_inner()?.finish()?;
    writer.flush()?;
    drop(writer);
    Ok(Package {
        sha256: sha256_file(&archive)?,
        archive,
    })
}

/// The sha256 of a file, lowercase hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0; 1 << 16];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// `manifest` with `version` (`vX.Y.Z`) as the plugin's version and in every release URI, and
/// `sha256` in the entry whose selector is `platform`. The text is edited line by line, so
/// its comments and layout stay as written.
pub fn fill_manifest(
    manifest: &str,
    version: &str,
    platform: Platform,
    sha256: &str,
) -> Result<String> {
    let mut out = String::with_capacity(manifest.len());
    let (mut os, mut arch) = (None, None);
    let mut filled = 0;
    for line in manifest.lines() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        let value = |key: &str| trimmed.strip_prefix(key).map(str::trim);
        let replaced = if trimmed.starts_with("- selector:") {
            (os, arch) = (None, None);
            None
        } else if let Some(v) = value("os:") {
            os = Some(v.to_string());
            None
        } else if let Some(v) = value("arch:") {
            arch = Some(v.to_string());
            None
        } else if value("version:").is_some() && indent == "  " {
            Some(format!("{indent}version: {version}"))
        } else if let Some(uri) = value("uri:") {
            Some(format!("{indent}uri: {}", with_release(uri, version)?))
        } else if value("sha256:").is_some()
            && os.as_deref() == Some(platform.os)
            && arch.as_deref() == Some(platform.arch)
        {
            filled += 1;
            // Quoted: an unquoted all-digit hash would be read as a number.
            Some(format!("{indent}sha256: \"{sha256}\""))
        } else {
            None
        };
        out.push_str(replaced.as_deref().unwrap_or(line));
        out.push('\n');
    }
    if filled != 1 {
        bail!(
            "the manifest has {filled} entries for os={} arch={} (want exactly one)",
            platform.os,
            platform.arch
        );
    }
    Ok(out)
}

/// A release URI (`…/releases/download/<tag>/<file>`) pointing at `version`'s release.
fn with_release(uri: &str, version: &str) -> Result<String> {
    const DOWNLOAD: &str = "/releases/download/";
    let Some((base, rest)) = uri.split_once(DOWNLOAD) else {
        bail!("uri {uri} is not a release download URI (…{DOWNLOAD}<tag>/<file>)");
    };
    let Some((_, file)) = rest.split_once('/') else {
        bail!("uri {uri} has no file after its release tag");
    };
    Ok(format!("{base}{DOWNLOAD}{version}/{file}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = "spec:
  version: v0.0.1
  platforms:
  - selector:
      matchLabels:
        os: linux
        arch: amd64
    uri: https://example.com/releases/download/v0.0.1/kubectl-vbackup-linux-amd64.tar.gz
    sha256: old
  - selector:
      matchLabels:
        os: linux
        arch: arm64
    uri: https://example.com/releases/download/v0.0.1/kubectl-vbackup-linux-arm64.tar.gz
    sha256: other
";

    #[test]
    fn only_the_platforms_entry_gets_the_sha256_and_every_uri_the_version() {
        let linux_arm = Platform {
            os: "linux",
            arch: "arm64",
        };
        let out = fill_manifest(MANIFEST, "v1.2.3", linux_arm, "abc").unwrap();
        assert!(out.contains("  version: v1.2.3\n"), "{out}");
        assert!(
            out.contains("sha256: old\n") && out.contains("sha256: \"abc\"\n"),
            "{out}"
        );
        assert_eq!(out.matches("/download/v1.2.3/").count(), 2, "{out}");
        let windows = Platform {
            os: "windows",
            arch: "amd64",
        };
        let err = fill_manifest(MANIFEST, "v1.2.3", windows, "abc").unwrap_err();
        assert!(
            err.to_string().contains("0 entries for os=windows"),
            "{err}"
        );
    }
}
