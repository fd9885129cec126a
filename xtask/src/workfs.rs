//! The benchmarks' working filesystem must not decide their figures.
//!
//! ext4 without a journal avoids reusing freed inodes for a while (`recently_deleted` in
//! fs/ext4/ialloc.c, one inode-table lookup per free candidate), so creating files near many
//! freshly deleted ones costs kernel time that depends on what the previous step deleted,
//! not on the tool. On this project's 2-core machines (root fs: ext4, no journal) creating
//! 20,000 empty files took 0.7–11.8 s depending on the deletions before it, 0.8–0.9 s every
//! time on a journaled ext4; restores, which follow `rm -r` of the previous restore or a
//! deleted namespace, spent most of their CPU there. Real volumes are journaled (ext4, xfs),
//! so the benchmarks refuse such a directory and say how to get a fitting one.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// Fails when `dir` (canonical: both callers resolved it) is on ext4 without a journal.
pub fn ensure_fair(dir: &Path) -> Result<()> {
    let mountinfo =
        std::fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
    let Some(mount) = mount_of(&mountinfo, dir) else {
        return Ok(());
    };
    if mount.fstype != "ext4" || journaled(&mount.device)? {
        return Ok(());
    }
    bail!(
        "{} is on ext4 without a journal (device {}): file creation there costs up to ten times more \
         right after deletions, whatever the tool, so restore figures would measure the \
         filesystem. Benchmark on a journaled filesystem, e.g.\n  truncate -s 16G /var/tmp/bench.img && \
         mkfs.ext4 -q /var/tmp/bench.img && mkdir -p {d} && mount -o loop /var/tmp/bench.img {d}",
        dir.display(),
        mount.device,
        d = dir.display()
    )
}

/// The filesystem a path is on, from one `/proc/self/mountinfo`.
#[derive(Debug, PartialEq, Eq)]
struct Mount {
    fstype: String,
    /// `major:minor` of the block device.
    device: String,
}

/// The mount with the longest mount point containing `path` (the last one wins on ties,
/// as a later mount hides an earlier one).
fn mount_of(mountinfo: &str, path: &Path) -> Option<Mount> {
    let mut best: Option<(usize, Mount)> = None;
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let fields: Vec<&str> = left.split(' ').collect();
        let (Some(device), Some(point)) = (fields.get(2), fields.get(4)) else {
            continue;
        };
        let point = PathBuf::from(unescape(point));
        if !path.starts_with(&point) {
            continue;
        }
        let depth = point.components().count();
        if best.as_ref().is_none_or(|(d, _)| depth >= *d) {
            let fstype = right.split(' ').next().unwrap_or_default().to_string();
            best = Some((
                depth,
                Mount {
                    fstype,
                    device: (*device).to_string(),
                },
            ));
        }
    }
    best.map(|(_, m)| m)
}

/// Mount points escape space, tab, newline and backslash as octal.
fn unescape(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// Whether the ext4 filesystem on block device `major:minor` has a journal: jbd2 lists each
/// journal as `<kernel device name>-<inode>`.
fn journaled(device: &str) -> Result<bool> {
    let link = Path::new("/sys/dev/block").join(device);
    let target =
        std::fs::read_link(&link).with_context(|| format!("reading {}", link.display()))?;
    let name = target
        .file_name()
        .with_context(|| format!("{} points nowhere", link.display()))?
        .to_string_lossy()
        .into_owned();
    let Ok(journals) = std::fs::read_dir("/proc/fs/jbd2") else {
        return Ok(false);
    };
    Ok(journals.flatten().any(|j| {
        j.file_name()
            .to_string_lossy()
            .starts_with(&format!("{name}-"))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw,discard
30 22 0:26 / /tmp rw shared:2 - tmpfs tmpfs rw
31 22 7:0 / /work/bench\\040x rw,relatime shared:3 - ext4 /dev/loop0 rw
";

    #[test]
    fn the_deepest_mount_containing_the_path_wins() {
        let m = |p: &str| mount_of(MOUNTINFO, Path::new(p)).map(|m| (m.fstype, m.device));
        assert_eq!(m("/work/bench x/data"), Some(("ext4".into(), "7:0".into())));
        assert_eq!(m("/work/bench"), Some(("ext4".into(), "254:0".into())));
        assert_eq!(m("/tmp/a"), Some(("tmpfs".into(), "0:26".into())));
        assert_eq!(m("/"), Some(("ext4".into(), "254:0".into())));
    }
}
