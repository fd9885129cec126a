//! Hooks read from a pod's annotations, in Velero's spelling and vbackup's twins.
//!
//! Velero's keys mean exactly what they mean to Velero: `pre.hook.backup.velero.io/…` (and
//! the legacy unprefixed `hook.backup.velero.io/…`, a pre hook), `post.hook.backup.velero.io/…`,
//! `post.hook.restore.velero.io/…` and `init.hook.restore.velero.io/…`. vbackup's own are the
//! same with `vbackup.io` in place of `velero.io`; when both name a command, Velero's wins.
//!
//! Nothing malformed is dropped quietly: every value that cannot be used as written gives a
//! [`Problem`] naming the pod, the annotation and the fix.

use std::collections::BTreeMap;
use std::time::Duration;

use super::types::{ExecHook, InitHook, OnError, Problem, RestoreExecHook};

/// Streaming dump: the command whose stdout is the backup (vbackup's key).
pub const BACKUP_COMMAND: &str = "vbackup.io/backup-command";
/// Streaming dump: the container it runs in (default: the first).
pub const BACKUP_COMMAND_CONTAINER: &str = "vbackup.io/backup-command-container";
/// Streaming dump: the file's extension, with its dot (e.g. `.sql`).
pub const FILE_EXTENSION: &str = "vbackup.io/file-extension";
/// The command fed the dump on stdin after a restore.
pub const RESTORE_COMMAND: &str = "vbackup.io/restore-command";
/// K8up's spelling of [`BACKUP_COMMAND`].
pub const K8UP_BACKUP_COMMAND: &str = "k8up.io/backupcommand";
/// K8up's spelling of [`BACKUP_COMMAND_CONTAINER`].
pub const K8UP_BACKUP_COMMAND_CONTAINER: &str = "k8up.io/backupcommand-container";
/// K8up's spelling of [`FILE_EXTENSION`].
pub const K8UP_FILE_EXTENSION: &str = "k8up.io/file-extension";

/// Velero's default bound of a backup hook.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a post-restore hook waits for its container when no `wait-timeout` is given.
/// (Velero waits forever; a restore that never ends helps nobody.)
pub const DEFAULT_WAIT_TIMEOUT: Duration = Duration::from_secs(600);

/// Which backup hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// Before the pod's volumes are copied.
    Pre,
    /// After they are copied (also when the copy failed).
    Post,
}

impl When {
    /// The annotation prefixes of this hook, Velero's first; the legacy unprefixed keys
    /// are pre hooks.
    fn prefixes(self) -> &'static [&'static str] {
        match self {
            When::Pre => &[
                "pre.hook.backup.velero.io/",
                "hook.backup.velero.io/",
                "pre.hook.backup.vbackup.io/",
                "hook.backup.vbackup.io/",
            ],
            When::Post => &[
                "post.hook.backup.velero.io/",
                "post.hook.backup.vbackup.io/",
            ],
        }
    }

    /// `pre` or `post`, for logs.
    pub fn name(self) -> &'static str {
        match self {
            When::Pre => "pre",
            When::Post => "post",
        }
    }
}

const POST_RESTORE: &[&str] = &[
    "post.hook.restore.velero.io/",
    "post.hook.restore.vbackup.io/",
];
const INIT_RESTORE: &[&str] = &[
    "init.hook.restore.velero.io/",
    "init.hook.restore.vbackup.io/",
];

/// A pod's annotations, with the pod's name for messages.
pub struct PodAnnotations<'a> {
    /// `namespace/name` of the pod.
    pub pod: String,
    /// Its annotations.
    pub map: &'a BTreeMap<String, String>,
}

impl<'a> PodAnnotations<'a> {
    /// The first prefix under which `<prefix>command` is set; hooks are read under it.
    fn prefix_with_command(&self, prefixes: &[&'static str]) -> Option<&'static str> {
        prefixes
            .iter()
            .copied()
            .find(|p| self.map.contains_key(&format!("{p}command")))
    }

    fn get(&self, prefix: &str, field: &str) -> Option<(String, &'a str)> {
        let key = format!("{prefix}{field}");
        self.map.get(&key).map(|v| (key, v.trim()))
    }

    fn problem(&self, annotation: &str, message: impl Into<String>) -> Problem {
        Problem {
            pod: self.pod.clone(),
            annotation: annotation.to_string(),
            message: message.into(),
        }
    }

    /// The pre or post backup hook, with what was wrong in its annotations.
    pub fn backup_hook(&self, when: When) -> (Option<ExecHook>, Vec<Problem>) {
        let Some(prefix) = self.prefix_with_command(when.prefixes()) else {
            return (None, self.orphans(when.prefixes()));
        };
        let mut problems = Vec::new();
        let hook = self.exec_hook(prefix, "timeout", &mut problems);
        (Some(hook), problems)
    }

    /// The post-restore exec hook.
    pub fn restore_hook(&self) -> (Option<RestoreExecHook>, Vec<Problem>) {
        let Some(prefix) = self.prefix_with_command(POST_RESTORE) else {
            return (None, self.orphans(POST_RESTORE));
        };
        let mut problems = Vec::new();
        let exec = self.exec_hook(prefix, "exec-timeout", &mut problems);
        let wait_timeout = self
            .get(prefix, "wait-timeout")
            .map(|(key, v)| {
                duration_or(v, DEFAULT_WAIT_TIMEOUT, |m| {
                    problems.push(self.problem(&key, m))
                })
            })
            .unwrap_or(DEFAULT_WAIT_TIMEOUT);
        let wait_for_ready = match self.get(prefix, "wait-for-ready") {
            None => false,
            Some((key, v)) => match v.to_ascii_lowercase().as_str() {
                "true" => true,
                "false" => false,
                _ => {
                    problems.push(self.problem(
                        &key,
                        format!("{v:?} is not true or false; waiting for the container to run, not to be ready"),
                    ));
                    false
                }
            },
        };
        (
            Some(RestoreExecHook {
                exec,
                wait_timeout,
                wait_for_ready,
            }),
            problems,
        )
    }

    /// The init container a restore adds to the pod.
    pub fn init_hook(&self) -> (Option<InitHook>, Vec<Problem>) {
        let mut problems = Vec::new();
        let Some(prefix) = INIT_RESTORE
            .iter()
            .copied()
            .find(|p| self.map.keys().any(|k| k.starts_with(p)))
        else {
            return (None, problems);
        };
        let image = self.get(prefix, "container-image");
        let Some((_, image)) = image.filter(|(_, v)| !v.is_empty()) else {
            problems.push(self.problem(
                &format!("{prefix}container-image"),
                "is missing or empty: the init hook needs the image of the container to add; no init container added",
            ));
            return (None, problems);
        };
        let name = self
            .get(prefix, "container-name")
            .map(|(_, v)| v.to_string())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "restore-hook".to_string());
        let command = match self.get(prefix, "command") {
            None => Vec::new(),
            Some((key, v)) => match parse_command(v) {
                Ok(c) => c,
                Err(m) => {
                    problems.push(self.problem(&key, format!("{m}; no init container added")));
                    return (None, problems);
                }
            },
        };
        (
            Some(InitHook {
                name,
                image: image.to_string(),
                command,
            }),
            problems,
        )
    }

    /// Settings given without a command: nothing runs, which is worth saying.
    fn orphans(&self, prefixes: &[&str]) -> Vec<Problem> {
        self.map
            .keys()
            .filter(|k| prefixes.iter().any(|p| k.starts_with(p)))
            .map(|k| {
                let prefix = &k[..k.rfind('/').map_or(0, |i| i + 1)];
                self.problem(
                    k,
                    format!("is set but {prefix}command is not: no hook runs; add the command"),
                )
            })
            .collect()
    }

    fn exec_hook(
        &self,
        prefix: &str,
        timeout_field: &str,
        problems: &mut Vec<Problem>,
    ) -> ExecHook {
        let (command_key, raw) = self.get(prefix, "command").unwrap_or_default();
        let command = parse_command(raw).map_err(|m| self.problem(&command_key, m).to_string());
        let container = self
            .get(prefix, "container")
            .map(|(_, v)| v.to_string())
            .filter(|v| !v.is_empty());
        let on_error = match self.get(prefix, "on-error") {
            None => OnError::Fail,
            Some((key, v)) => OnError::parse(v).unwrap_or_else(|| {
                problems.push(self.problem(
                    &key,
                    format!("{v:?} is not an on-error mode: write Fail or Continue; using Fail"),
                ));
                OnError::Fail
            }),
        };
        let timeout = match self.get(prefix, timeout_field) {
            None => DEFAULT_TIMEOUT,
            Some((key, v)) => {
                duration_or(v, DEFAULT_TIMEOUT, |m| problems.push(self.problem(&key, m)))
            }
        };
        ExecHook {
            container,
            command,
            on_error,
            timeout,
            origin: format!("annotation {command_key}"),
        }
    }
}

/// A command as Velero reads it: a JSON array of strings when the value starts with `[`,
/// otherwise the whole value as the one argument.
pub fn parse_command(value: &str) -> Result<Vec<String>, String> {
    let value = value.trim();
    if value.is_empty() {
        return Err("is empty: give a command such as [\"/bin/sh\", \"-c\", \"...\"]".into());
    }
    if !value.starts_with('[') {
        return Ok(vec![value.to_string()]);
    }
    match serde_json::from_str::<Vec<String>>(value) {
        Ok(words) if words.is_empty() => {
            Err("is an empty JSON array: give at least the program to run".into())
        }
        Ok(words) => Ok(words),
        Err(e) => Err(format!(
            "is not a JSON array of strings ({e}): write it as [\"/bin/sh\", \"-c\", \"...\"]"
        )),
    }
}

/// A duration in Go's syntax (`30s`, `1m30s`, `500ms`, `2h`), as Velero parses it; on a
/// malformed value `report` hears why and `default` is used.
fn duration_or(value: &str, default: Duration, report: impl FnOnce(String)) -> Duration {
    go_duration(value).unwrap_or_else(|why| {
        report(format!(
            "{value:?} {why}: write it like 30s, 5m or 1h30m; using {}",
            humantime::format_duration(default)
        ));
        default
    })
}

/// Parses Go's `time.ParseDuration` syntax (without a sign): numbers with units `ns`, `us`,
/// `µs`, `ms`, `s`, `m`, `h`, concatenated; a bare `0` is zero.
pub fn go_duration(value: &str) -> Result<Duration, &'static str> {
    let mut rest = value.trim();
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err("is empty");
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..end].parse().map_err(|_| "is not a duration")?;
        rest = &rest[end..];
        let (unit, seconds) = [
            ("ns", 1e-9),
            ("us", 1e-6),
            ("µs", 1e-6),
            ("ms", 1e-3),
            ("s", 1.0),
            ("m", 60.0),
            ("h", 3600.0),
        ]
        .into_iter()
        .filter(|(u, _)| rest.starts_with(u))
        .max_by_key(|(u, _)| u.len())
        .ok_or(
            if rest.is_empty() || rest.starts_with(|c: char| c.is_ascii_digit()) {
                "has no unit"
            } else {
                "has an unknown unit"
            },
        )?;
        rest = &rest[unit.len()..];
        total += number * seconds;
    }
    Duration::try_from_secs_f64(total).map_err(|_| "is out of range")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn annotations(map: &BTreeMap<String, String>) -> PodAnnotations<'_> {
        PodAnnotations {
            pod: "shop/db-0".into(),
            map,
        }
    }

    #[test]
    fn go_durations_as_velero_reads_them() {
        assert_eq!(go_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(go_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(go_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(go_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(go_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(go_duration("0"), Ok(Duration::ZERO));
        assert_eq!(go_duration("30"), Err("has no unit"));
        assert_eq!(go_duration("30 s"), Err("has an unknown unit"));
        assert_eq!(go_duration("5d"), Err("has an unknown unit"));
        assert_eq!(go_duration("s"), Err("is not a duration"));
    }

    #[test]
    fn commands_are_json_arrays_or_one_argument() {
        assert_eq!(
            parse_command(r#"["/bin/sh", "-c", "echo hi"]"#),
            Ok(vec!["/bin/sh".into(), "-c".into(), "echo hi".into()])
        );
        assert_eq!(
            parse_command("/sbin/fsfreeze"),
            Ok(vec!["/sbin/fsfreeze".into()])
        );
        assert!(
            parse_command(r#"["/bin/sh", "-c"#)
                .unwrap_err()
                .contains("not a JSON array")
        );
        assert!(parse_command("[]").unwrap_err().contains("empty"));
        assert!(
            parse_command(r#"[1, 2]"#)
                .unwrap_err()
                .contains("not a JSON array")
        );
    }

    #[test]
    fn velero_pre_and_post_hooks_with_their_settings() {
        let map = pod(&[
            ("pre.hook.backup.velero.io/container", "db"),
            (
                "pre.hook.backup.velero.io/command",
                r#"["/bin/sh","-c","sync"]"#,
            ),
            ("pre.hook.backup.velero.io/on-error", "Continue"),
            ("pre.hook.backup.velero.io/timeout", "2m"),
            ("post.hook.backup.velero.io/command", "/bin/unfreeze"),
        ]);
        let a = annotations(&map);
        let (pre, problems) = a.backup_hook(When::Pre);
        let pre = pre.unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(pre.container.as_deref(), Some("db"));
        assert_eq!(pre.command.as_deref().unwrap(), ["/bin/sh", "-c", "sync"]);
        assert_eq!(pre.on_error, OnError::Continue);
        assert_eq!(pre.timeout, Duration::from_secs(120));
        let (post, _) = a.backup_hook(When::Post);
        let post = post.unwrap();
        assert_eq!(post.container, None);
        assert_eq!(post.command.unwrap(), ["/bin/unfreeze"]);
        assert_eq!(
            (post.on_error, post.timeout),
            (OnError::Fail, DEFAULT_TIMEOUT)
        );
    }

    #[test]
    fn legacy_unprefixed_keys_are_pre_hooks_and_twins_count_too() {
        let map = pod(&[("hook.backup.velero.io/command", "sync")]);
        assert_eq!(
            annotations(&map)
                .backup_hook(When::Pre)
                .0
                .unwrap()
                .command
                .unwrap(),
            ["sync"]
        );
        let map = pod(&[
            ("post.hook.backup.vbackup.io/command", "thaw"),
            ("post.hook.backup.vbackup.io/timeout", "5s"),
        ]);
        let post = annotations(&map).backup_hook(When::Post).0.unwrap();
        assert_eq!(
            (post.command.unwrap(), post.timeout),
            (vec!["thaw".to_string()], Duration::from_secs(5))
        );
        // Velero's spelling wins over the twin.
        let map = pod(&[
            ("pre.hook.backup.velero.io/command", "velero"),
            ("pre.hook.backup.vbackup.io/command", "vbackup"),
        ]);
        assert_eq!(
            annotations(&map)
                .backup_hook(When::Pre)
                .0
                .unwrap()
                .command
                .unwrap(),
            ["velero"]
        );
    }

    #[test]
    fn each_malformed_value_is_named_with_its_fix() {
        let map = pod(&[
            ("pre.hook.backup.velero.io/command", r#"["sync""#),
            ("pre.hook.backup.velero.io/on-error", "Ignore"),
            ("pre.hook.backup.velero.io/timeout", "30"),
            ("post.hook.backup.velero.io/container", "db"),
        ]);
        let a = annotations(&map);
        let (pre, problems) = a.backup_hook(When::Pre);
        let pre = pre.unwrap();
        let bad_json = pre.command.unwrap_err();
        assert!(
            bad_json.contains("pod shop/db-0, annotation pre.hook.backup.velero.io/command"),
            "{bad_json}"
        );
        assert!(bad_json.contains("not a JSON array"), "{bad_json}");
        let texts: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(texts.len(), 2, "{texts:?}");
        assert!(
            texts[0].contains("pre.hook.backup.velero.io/on-error")
                && texts[0].contains("write Fail or Continue"),
            "{texts:?}"
        );
        assert!(
            texts[1].contains("pre.hook.backup.velero.io/timeout")
                && texts[1].contains("has no unit")
                && texts[1].contains("using 30s"),
            "{texts:?}"
        );
        assert_eq!(
            (pre.on_error, pre.timeout),
            (OnError::Fail, DEFAULT_TIMEOUT)
        );
        let (post, problems) = a.backup_hook(When::Post);
        assert!(post.is_none());
        assert!(
            problems[0]
                .to_string()
                .contains("post.hook.backup.velero.io/command is not: no hook runs"),
            "{problems:?}"
        );
    }

    #[test]
    fn post_restore_hooks_wait_and_init_hooks_add_containers() {
        let map = pod(&[
            (
                "post.hook.restore.velero.io/command",
                r#"["/bin/sh","-c","reindex"]"#,
            ),
            ("post.hook.restore.velero.io/container", "app"),
            ("post.hook.restore.velero.io/exec-timeout", "45s"),
            ("post.hook.restore.velero.io/wait-timeout", "3m"),
            ("post.hook.restore.velero.io/wait-for-ready", "true"),
            ("init.hook.restore.velero.io/container-image", "alpine:3"),
            ("init.hook.restore.velero.io/container-name", "seed"),
            (
                "init.hook.restore.velero.io/command",
                r#"["/bin/ash","-c","date"]"#,
            ),
        ]);
        let a = annotations(&map);
        let (hook, problems) = a.restore_hook();
        let hook = hook.unwrap();
        assert!(problems.is_empty());
        assert_eq!(hook.exec.timeout, Duration::from_secs(45));
        assert_eq!(hook.wait_timeout, Duration::from_secs(180));
        assert!(hook.wait_for_ready);
        let (init, _) = a.init_hook();
        assert_eq!(
            init.unwrap(),
            InitHook {
                name: "seed".into(),
                image: "alpine:3".into(),
                command: vec!["/bin/ash".into(), "-c".into(), "date".into()]
            }
        );
        let map = pod(&[
            ("post.hook.restore.velero.io/command", "x"),
            ("post.hook.restore.velero.io/wait-for-ready", "yes"),
            ("post.hook.restore.velero.io/wait-timeout", "10"),
            ("init.hook.restore.velero.io/container-name", "seed"),
        ]);
        let a = annotations(&map);
        let problems: Vec<String> = a.restore_hook().1.iter().map(ToString::to_string).collect();
        assert!(
            problems
                .iter()
                .any(|p| p.contains("wait-timeout") && p.contains("has no unit")),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("wait-for-ready") && p.contains("not true or false")),
            "{problems:?}"
        );
        let (init, problems) = a.init_hook();
        assert!(init.is_none());
        assert!(
            problems[0]
                .to_string()
                .contains("init.hook.restore.velero.io/container-image is missing"),
            "{problems:?}"
        );
    }
}
