//! What each finished container cost: CPU time and peak resident memory of its process (and
//! of the children it reaped), read from the kernel the moment it exits — the per-container
//! figures a real node's cgroups give, without the page cache a cgroup's memory counts.
//! Benchmarks read them through [`super::Node::container_usage`]; nothing in the cluster's
//! behaviour depends on them.
//!
//! The container's process is a child of this one, owned by a tokio `Child`. `waitid` with
//! `WNOWAIT` reads its `rusage` without reaping it (a zombie keeps its accounting), so the
//! `Child` still reaps it and gets its exit status. Tokio reaps only when its `wait` is
//! polled, so reading first is race-free.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::Mutex;
use std::time::Duration;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// Records kept per node (the most recent).
const KEPT: usize = 1024;

/// The cost of one container run that exited by itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerUsage {
    /// Increasing on this node: records newer than one seen before have a larger `seq`.
    pub seq: u64,
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub pod: String,
    /// The container's name.
    pub container: String,
    /// The container's image.
    pub image: String,
    /// The process's exit code (128 + signal for a killed one).
    pub exit_code: i32,
    /// CPU time in user mode.
    pub user_cpu: Duration,
    /// CPU time in the kernel.
    pub system_cpu: Duration,
    /// Peak resident set size in KiB (`ru_maxrss`: the largest of the process and the
    /// children it reaped).
    pub max_rss_kib: u64,
}

/// What a process used, as the kernel accounts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// CPU time in user mode.
    pub user_cpu: Duration,
    /// CPU time in the kernel.
    pub system_cpu: Duration,
    /// Peak resident set size in KiB.
    pub max_rss_kib: u64,
}

/// The node's records of finished containers.
#[derive(Default)]
pub struct Ledger {
    records: Mutex<(u64, VecDeque<ContainerUsage>)>,
}

impl Ledger {
    /// Adds a record; its `seq` is assigned here.
    pub fn record(&self, mut usage: ContainerUsage) {
        let mut guard = self.records.lock().unwrap_or_else(|p| p.into_inner());
        let (next, records) = &mut *guard;
        *next += 1;
        usage.seq = *next;
        if records.len() == KEPT {
            records.pop_front();
        }
        records.push_back(usage);
    }

    /// The records, oldest first.
    pub fn all(&self) -> Vec<ContainerUsage> {
        let guard = self.records.lock().unwrap_or_else(|p| p.into_inner());
        guard.1.iter().cloned().collect()
    }
}

/// Waits until child process `pid` has exited and returns what it used, leaving it for its
/// owner to reap. Fails when `pid` is not an unreaped child of this process.
pub async fn on_exit(pid: u32) -> io::Result<Usage> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_pidfd_open,
            libc::c_long::from(pid),
            0 as libc::c_long,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the descriptor was just created and nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    // A pidfd becomes readable when its process exits.
    // SAFETY: the OwnedFd keeps the descriptor open, unchanged, for the AsyncFd's lifetime.
    let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }?;
    loop {
        let mut ready = fd.readable().await?;
        if let Some(usage) = exited_usage(pid)? {
            return Ok(usage);
        }
        ready.clear_ready();
    }
}

/// The usage of `pid` if it has exited (not reaping it); `None` while it runs.
fn exited_usage(pid: u32) -> io::Result<Option<Usage>> {
    // SAFETY: plain C structs, valid when zeroed.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: the raw waitid system call (glibc's wrapper drops its fifth argument, the
    // rusage) with pointers to the two structs above, which outlive the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_waitid,
            libc::c_long::from(libc::P_PID),
            libc::c_long::from(pid),
            &mut info as *mut libc::siginfo_t,
            libc::c_long::from(libc::WEXITED | libc::WNOWAIT | libc::WNOHANG),
            &mut usage as *mut libc::rusage,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: waitid filled `info`; with WNOHANG and no exited child its pid is 0.
    if unsafe { info.si_pid() } == 0 {
        return Ok(None);
    }
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
    };
    Ok(Some(Usage {
        user_cpu: time(usage.ru_utime),
        system_cpu: time(usage.ru_stime),
        max_rss_kib: usage.ru_maxrss.max(0) as u64,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn usage_is_read_before_the_owner_reaps_the_child() {
        // The shell holds ~40 MB in a variable and burns CPU producing it; `tr` is a child
        // it reaps, so its CPU counts too.
        let mut child = tokio::process::Command::new("/bin/sh")
            .args(["-c", "x=$(head -c 40000000 /dev/zero | tr '\\0' x); exit 3"])
            .spawn()
            .unwrap();
        let pid = child.id().unwrap();
        let usage = on_exit(pid).await.unwrap();
        assert!(usage.max_rss_kib >= 39_000, "{usage:?}");
        assert!(
            usage.user_cpu + usage.system_cpu > Duration::ZERO,
            "{usage:?}"
        );
        // Still unreaped: its owner gets the exit status.
        assert_eq!(child.wait().await.unwrap().code(), Some(3));
        assert!(on_exit(pid).await.is_err(), "a reaped process is no child");
    }

    #[test]
    fn the_ledger_numbers_records_and_keeps_the_most_recent() {
        let ledger = Ledger::default();
        for i in 0..KEPT + 2 {
            ledger.record(ContainerUsage {
                seq: 0,
                namespace: "ns".into(),
                pod: format!("p{i}"),
                container: "c".into(),
                image: "img".into(),
                exit_code: 0,
                user_cpu: Duration::ZERO,
                system_cpu: Duration::ZERO,
                max_rss_kib: 0,
            });
        }
        let all = ledger.all();
        assert_eq!(all.len(), KEPT);
        assert_eq!(all[0].pod, "p2");
        assert_eq!(all[0].seq, 3);
        assert_eq!(all.last().unwrap().seq, KEPT as u64 + 2);
    }
}
