//! Go's `time.Duration` text (`720h0m0s`, `1h30m`, `90s`), as Velero writes `spec.ttl`.

use std::time::Duration;

/// Parses a Go duration; `None` when it is not one (the hooks' parser, which also says why).
pub(crate) fn parse_go_duration(text: &str) -> Option<Duration> {
    crate::hooks::annotations::go_duration(text).ok()
}

#[cfg(test)]
mod tests {
    use super::parse_go_duration;
    use std::time::Duration;

    #[test]
    fn go_durations_as_velero_writes_them() {
        let cases = [
            ("720h0m0s", Some(Duration::from_secs(720 * 3600))),
            ("24h", Some(Duration::from_secs(86400))),
            ("1h30m", Some(Duration::from_secs(5400))),
            ("1.5h", Some(Duration::from_secs(5400))),
            ("90s", Some(Duration::from_secs(90))),
            ("0s", Some(Duration::ZERO)),
            ("0", Some(Duration::ZERO)),
            ("", None),
            ("10 days", None),
            ("h", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_go_duration(text), want, "{text:?}");
        }
    }
}
