//! CronJob schedules as Kubernetes reads them (robfig/cron v3's `ParseStandard`): five
//! fields with names (`jan`, `mon`), ranges, steps, `*`/`?`, the `@` descriptors and a
//! `TZ=`/`CRON_TZ=` prefix, with that parser's error messages, which the API server
//! returns verbatim.

use jiff::civil::DateTime;

/// Bounds and names of one field.
struct Bounds {
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const MONTHS: &[&str] = &[
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

const FIELDS: [Bounds; 5] = [
    Bounds {
        min: 0,
        max: 59,
        names: &[],
    },
    Bounds {
        min: 0,
        max: 23,
        names: &[],
    },
    Bounds {
        min: 1,
        max: 31,
        names: &[],
    },
    Bounds {
        min: 1,
        max: 12,
        names: MONTHS,
    },
    Bounds {
        min: 0,
        max: 6,
        names: DAYS,
    },
];

/// A parsed schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// Allowed values per field (bit i = value i).
    bits: [u64; 5],
    /// Day-of-month or day-of-week was `*`/`?`: both day fields must then match.
    star_day: bool,
    /// `@every DURATION`: runs at a fixed interval, not at calendar minutes.
    pub every: Option<std::time::Duration>,
    /// The zone given with `TZ=`/`CRON_TZ=`, if any.
    pub zone: Option<String>,
}

fn go_atoi_error(expr: &str) -> String {
    let kind = if !expr.is_empty()
        && expr
            .strip_prefix(['+', '-'])
            .unwrap_or(expr)
            .chars()
            .all(|c| c.is_ascii_digit())
        && !expr.strip_prefix(['+', '-']).unwrap_or(expr).is_empty()
    {
        "value out of range"
    } else {
        "invalid syntax"
    };
    format!("failed to parse int from {expr}: strconv.Atoi: parsing \"{expr}\": {kind}")
}

fn parse_int(expr: &str) -> Result<u64, String> {
    let n: i64 = expr.parse().map_err(|_| go_atoi_error(expr))?;
    u64::try_from(n).map_err(|_| format!("negative number ({n}) not allowed: {expr}"))
}

fn parse_int_or_name(expr: &str, names: &[&str]) -> Result<u64, String> {
    let lower = expr.to_ascii_lowercase();
    if let Some(i) = names.iter().position(|n| *n == lower) {
        // Month names count from 1, day names from 0.
        return Ok(i as u64 + u64::from(names.len() == 12));
    }
    parse_int(expr)
}

/// One comma-separated part: the bits it sets and whether it is an unstepped star.
fn range(expr: &str, b: &Bounds) -> Result<(u64, bool), String> {
    let range_and_step: Vec<&str> = expr.split('/').collect();
    let low_high: Vec<&str> = range_and_step[0].split('-').collect();
    let (min, max) = (u64::from(b.min), u64::from(b.max));
    let (mut start, mut end, mut star) = if low_high[0] == "*" || low_high[0] == "?" {
        (min, max, true)
    } else {
        let start = parse_int_or_name(low_high[0], b.names)?;
        let end = match low_high.len() {
            1 => start,
            2 => parse_int_or_name(low_high[1], b.names)?,
            _ => return Err(format!("too many hyphens: {expr}")),
        };
        (start, end, false)
    };
    let step = match range_and_step.len() {
        1 => 1,
        2 => {
            let step = parse_int(range_and_step[1])?;
            if low_high.len() == 1 {
                end = max;
            }
            if step > 1 {
                star = false;
            }
            step
        }
        _ => return Err(format!("too many slashes: {expr}")),
    };
    if start < min {
        return Err(format!(
            "beginning of range ({start}) below minimum ({}): {expr}",
            b.min
        ));
    }
    if end > max {
        return Err(format!(
            "end of range ({end}) above maximum ({}): {expr}",
            b.max
        ));
    }
    if start > end {
        return Err(format!(
            "beginning of range ({start}) beyond end of range ({end}): {expr}"
        ));
    }
    if step == 0 {
        return Err(format!("step of range should be a positive number: {expr}"));
    }
    let mut bits = 0u64;
    while start <= end {
        bits |= 1 << start;
        start += step;
    }
    Ok((bits, star))
}

/// Go's `time.ParseDuration` for the units a schedule uses.
fn go_duration(text: &str) -> Option<std::time::Duration> {
    let mut rest = text;
    let mut total = 0f64;
    if rest.is_empty() {
        return None;
    }
    if rest == "0" {
        return Some(std::time::Duration::ZERO);
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let n: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += n * scale;
        rest = &rest[unit_len..];
    }
    Some(std::time::Duration::from_secs_f64(total))
}

impl Schedule {
    /// Parses a schedule as the API server and the CronJob controller do.
    pub fn parse(spec: &str) -> Result<Schedule, String> {
        if spec.is_empty() {
            return Err("empty spec string".into());
        }
        let mut spec = spec;
        let mut zone = None;
        if spec.starts_with("TZ=") || spec.starts_with("CRON_TZ=") {
            let eq = spec.find('=').unwrap_or(0);
            let end = spec.find(' ').unwrap_or(spec.len());
            let name = &spec[eq + 1..end];
            if let Err(e) = load_location(name) {
                return Err(format!("provided bad location {name}: {e}"));
            }
            zone = Some(name.to_string());
            spec = spec[end..].trim();
        }
        let text = if spec.starts_with('@') {
            match spec {
                "@yearly" | "@annually" => "0 0 1 1 *",
                "@monthly" => "0 0 1 * *",
                "@weekly" => "0 0 * * 0",
                "@daily" | "@midnight" => "0 0 * * *",
                "@hourly" => "0 * * * *",
                _ => {
                    if let Some(d) = spec.strip_prefix("@every ") {
                        let every = go_duration(d).ok_or_else(|| {
                            format!(
                                "failed to parse duration {spec}: time: invalid duration \"{d}\""
                            )
                        })?;
                        return Ok(Schedule {
                            bits: [0; 5],
                            star_day: true,
                            every: Some(every),
                            zone,
                        });
                    }
                    return Err(format!("unrecognized descriptor: {spec}"));
                }
            }
        } else {
            spec
        };
        let fields: Vec<&str> = text.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(format!(
                "expected exactly 5 fields, found {}: [{}]",
                fields.len(),
                fields.join(" ")
            ));
        }
        let mut bits = [0u64; 5];
        let mut stars = [false; 5];
        for (i, f) in fields.iter().enumerate() {
            for part in f.split(',').filter(|p| !p.is_empty()) {
                let (b, star) = range(part, &FIELDS[i])?;
                bits[i] |= b;
                stars[i] |= star;
            }
        }
        Ok(Schedule {
            bits,
            star_day: stars[2] || stars[4],
            every: None,
            zone,
        })
    }

    /// Whether the schedule fires at this (zone-local) minute.
    pub fn matches(&self, t: DateTime) -> bool {
        if self.every.is_some() {
            return false;
        }
        let has = |i: usize, v: i8| self.bits[i] & (1 << v) != 0;
        let dom = has(2, t.day());
        let dow = has(4, t.weekday().to_sunday_zero_offset());
        let day = if self.star_day {
            dom && dow
        } else {
            dom || dow
        };
        has(0, t.minute()) && has(1, t.hour()) && has(3, t.month()) && day
    }
}

/// Go's `time.LoadLocation` over the IANA database (jiff's): its error when unknown.
pub fn load_location(name: &str) -> Result<jiff::tz::TimeZone, String> {
    if name.is_empty() || name == "UTC" {
        return Ok(jiff::tz::TimeZone::UTC);
    }
    jiff::tz::TimeZone::get(name).map_err(|_| format!("unknown time zone {name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime {
        text.parse().unwrap()
    }

    #[test]
    fn schedules_match_minutes_like_cron() {
        let every_5 = Schedule::parse("*/5 * * * *").unwrap();
        assert!(every_5.matches(at("2026-11-28T10:15:00")));
        assert!(!every_5.matches(at("2026-11-28T10:16:00")));
        let nightly = Schedule::parse("@daily").unwrap();
        assert!(nightly.matches(at("2026-11-29T00:00:00")));
        assert!(!nightly.matches(at("2026-11-29T01:00:00")));
        // 2026-11-29 is a Sunday: day-of-month or day-of-week may match.
        let either = Schedule::parse("30 2 1 * sun").unwrap();
        assert!(either.matches(at("2026-11-29T02:30:00")));
        assert!(either.matches(at("2026-12-01T02:30:00")));
        assert!(!either.matches(at("2026-12-02T02:30:00")));
        let ranges = Schedule::parse("0 9-17/4,20 * nov-dec 1-5").unwrap();
        assert!(ranges.matches(at("2026-11-30T13:00:00")));
        assert!(ranges.matches(at("2026-11-30T20:00:00")));
        assert!(!ranges.matches(at("2026-11-30T11:00:00")));
    }

    #[test]
    fn errors_are_robfig_crons() {
        let err = |s: &str| Schedule::parse(s).unwrap_err();
        assert_eq!(
            err("61 * * * *"),
            "end of range (61) above maximum (59): 61"
        );
        assert_eq!(err("* * *"), "expected exactly 5 fields, found 3: [* * *]");
        assert_eq!(err("0 0 * * 7"), "end of range (7) above maximum (6): 7");
        assert_eq!(
            err("x * * * *"),
            "failed to parse int from x: strconv.Atoi: parsing \"x\": invalid syntax"
        );
        assert_eq!(
            err("5-1 * * * *"),
            "beginning of range (5) beyond end of range (1): 5-1"
        );
        assert_eq!(err("@often"), "unrecognized descriptor: @often");
        assert_eq!(
            err("TZ=Mars/Base 0 * * * *"),
            "provided bad location Mars/Base: unknown time zone Mars/Base"
        );
        assert_eq!(
            Schedule::parse("CRON_TZ=Europe/Paris 0 * * * *")
                .unwrap()
                .zone
                .as_deref(),
            Some("Europe/Paris")
        );
    }
}
