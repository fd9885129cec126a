//! Container logs as a runtime keeps them: the output bytes, stdout and stderr interleaved as
//! written, and when each line was written, so `pods/log` can honour `timestamps`,
//! `sinceSeconds` and `sinceTime`.
//!
//! On disk: `NAME.log` holds the bytes; `NAME.log.times` one record per finished line,
//! `END_OFFSET UNIX_NANOS`.

use std::path::{Path, PathBuf};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

/// The times file of a log.
pub fn times_path(log: &Path) -> PathBuf {
    let mut p = log.as_os_str().to_owned();
    p.push(".times");
    PathBuf::from(p)
}

fn now_nanos() -> i128 {
    jiff::Timestamp::now().as_nanosecond()
}

/// Copies a container's stdout and stderr into its log until both end, recording when each
/// line ends.
pub async fn capture(
    stdout: impl AsyncRead + Unpin,
    stderr: impl AsyncRead + Unpin,
    log: &Path,
) -> std::io::Result<()> {
    let mut options = tokio::fs::OpenOptions::new();
    options.create(true).append(true);
    let mut file = options.open(log).await?;
    let mut times = options.open(times_path(log)).await?;
    let mut offset = file.metadata().await?.len();
    let (mut out, mut err) = (Some(stdout), Some(stderr));
    let (mut a, mut b) = ([0u8; 8192], [0u8; 8192]);
    while out.is_some() || err.is_some() {
        let (n, from_out) = tokio::select! {
            r = async { out.as_mut().unwrap().read(&mut a).await }, if out.is_some() => (r?, true),
            r = async { err.as_mut().unwrap().read(&mut b).await }, if err.is_some() => (r?, false),
        };
        if n == 0 {
            if from_out {
                out = None;
            } else {
                err = None;
            }
            continue;
        }
        let chunk = if from_out { &a[..n] } else { &b[..n] };
        file.write_all(chunk).await?;
        let at = now_nanos();
        let mut records = String::new();
        for (i, byte) in chunk.iter().enumerate() {
            if *byte == b'\n' {
                records.push_str(&format!("{} {at}\n", offset + i as u64 + 1));
            }
        }
        offset += n as u64;
        if !records.is_empty() {
            times.write_all(records.as_bytes()).await?;
        }
    }
    file.flush().await?;
    times.flush().await
}

/// The lines of `log[from..]` with the time each was written (a last line still being
/// written gets the current time).
pub fn lines<'a>(log: &'a [u8], times: &str, from: usize) -> Vec<(i128, &'a [u8])> {
    let marks: Vec<(usize, i128)> = times
        .lines()
        .filter_map(|l| {
            let (o, t) = l.split_once(' ')?;
            Some((o.parse().ok()?, t.parse().ok()?))
        })
        .collect();
    let mut out = Vec::new();
    let mut start = from.min(log.len());
    while start < log.len() {
        let end = log[start..]
            .iter()
            .position(|b| *b == b'\n')
            .map(|i| start + i + 1)
            .unwrap_or(log.len());
        let at = marks
            .iter()
            .find(|(o, _)| *o >= end)
            .map(|(_, t)| *t)
            .unwrap_or_else(now_nanos);
        out.push((at, &log[start..end]));
        start = end;
    }
    out
}

/// The kubelet's timestamp prefix: RFC 3339 with nine fractional digits, then a space.
pub fn stamp(nanos: i128) -> String {
    jiff::Timestamp::from_nanosecond(nanos)
        .map(|t| {
            format!(
                "{}.{:09}Z ",
                t.strftime("%Y-%m-%dT%H:%M:%S"),
                t.subsec_nanosecond()
            )
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_take_the_time_their_newline_was_written() {
        let log = b"a\nbb\nccc";
        let times = "2 100\n5 200\n";
        let l = lines(log, times, 0);
        assert_eq!(l[0], (100, &b"a\n"[..]));
        assert_eq!(l[1], (200, &b"bb\n"[..]));
        assert_eq!(l[2].1, b"ccc");
        assert_eq!(lines(log, times, 2)[0], (200, &b"bb\n"[..]));
    }

    #[test]
    fn stamps_are_rfc3339_with_nanoseconds() {
        assert_eq!(
            stamp(1_500_000_000_123_456_789),
            "2017-07-14T02:40:00.123456789Z "
        );
    }
}
