//! `kubectl vbackup schedule …`: backups on a cron schedule, run by a CronJob in the cluster.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use jiff::Timestamp;
use vbackup_engine::schedules::{MoverOptions, Retention, Schedule, ScheduleSpec, Schedules};
use vbackup_engine::store::Locations;
use vbackup_engine::volumes::step::default_image;

use super::Context;
use super::backup::BackupFlags;
use super::volumes::MoverArgs;
use crate::output::{print_structured, table};

/// The `schedule` subcommands.
// Parsed once per process: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Create a schedule: a CronJob in the vbackup namespace that makes a backup with these
    /// flags at each time of the cron expression.
    Create(ScheduleCreateArgs),
    /// List schedules (or show one).
    Get {
        /// Only this schedule.
        name: Option<String>,
    },
    /// Show a schedule: its cron expression, next run, backup template and retention.
    Describe {
        /// The schedule.
        name: String,
    },
    /// Stop making backups until `unpause` (the CronJob is suspended).
    Pause {
        /// The schedule.
        name: String,
    },
    /// Resume a paused schedule.
    Unpause {
        /// The schedule.
        name: String,
    },
    /// Delete a schedule; its backups stay until they expire.
    Delete {
        /// The schedule.
        name: String,
    },
    /// Start a run now (a Job from the schedule's CronJob).
    RunNow {
        /// The schedule.
        name: String,
    },
}

/// Arguments of `schedule create`.
#[derive(Debug, Args)]
pub struct ScheduleCreateArgs {
    /// Name of the schedule; its backups are named NAME-<yyyyMMddHHmmss> (UTC).
    pub name: String,
    /// When to run: five cron fields "MIN HOUR DAY-OF-MONTH MONTH DAY-OF-WEEK", or @daily,
    /// @weekly….
    #[arg(long, value_name = "CRON")]
    pub schedule: String,
    /// IANA time zone the schedule is read in (default: UTC).
    #[arg(long, value_name = "ZONE")]
    pub time_zone: Option<String>,
    /// The image the CronJob runs (it must hold kubectl-vbackup).
    #[arg(long, value_name = "IMAGE", default_value_t = default_image())]
    pub image: String,
    #[command(flatten)]
    pub retention: RetentionArgs,
    /// Verify the new backup after every Nth successful one (`kubectl vbackup verify`: a
    /// test restore into scratch namespaces); 0 = never. Runs then use the vbackup-verify
    /// ServiceAccount.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub verify_every: u32,
    #[command(flatten)]
    pub flags: BackupFlags,
}

/// Retention of a schedule's successful backups beyond their TTL (restic's rules); gc
/// applies it after each run.
#[derive(Debug, Args)]
pub struct RetentionArgs {
    /// Keep the newest N backups.
    #[arg(long, value_name = "N")]
    pub keep_last: Option<u32>,
    /// Keep the newest backup of each of the last N days that have one.
    #[arg(long, value_name = "N")]
    pub keep_daily: Option<u32>,
    /// Keep the newest backup of each of the last N weeks that have one.
    #[arg(long, value_name = "N")]
    pub keep_weekly: Option<u32>,
    /// Keep the newest backup of each of the last N months that have one.
    #[arg(long, value_name = "N")]
    pub keep_monthly: Option<u32>,
}

/// The mover flags of a schedule's runs, as `backup create` takes them.
pub fn mover_args(m: &MoverOptions) -> (MoverArgs, Duration) {
    (
        MoverArgs {
            parallel_volumes: m.parallel_volumes,
            mover_image: m.mover_image.clone(),
            mover_start_timeout: m.mover_start_timeout,
            stall_timeout: m.stall_timeout,
        },
        m.snapshot_timeout,
    )
}

impl ScheduleCreateArgs {
    fn spec(&self, namespace: Option<&str>) -> anyhow::Result<ScheduleSpec> {
        let template = self.flags.request(&self.name, namespace)?;
        let movers = &self.flags.volumes.movers;
        let spec = ScheduleSpec {
            schedule: self.schedule.clone(),
            time_zone: self.time_zone.clone(),
            template,
            retention: Retention {
                keep_last: self.retention.keep_last,
                keep_daily: self.retention.keep_daily,
                keep_weekly: self.retention.keep_weekly,
                keep_monthly: self.retention.keep_monthly,
            },
            movers: MoverOptions {
                parallel_volumes: movers.parallel_volumes,
                mover_image: movers.mover_image.clone(),
                mover_start_timeout: movers.mover_start_timeout,
                stall_timeout: movers.stall_timeout,
                snapshot_timeout: self.flags.volumes.snapshot_timeout,
            },
            verify_every: self.verify_every,
        };
        spec.validate(&self.name)?;
        Ok(spec)
    }
}

/// Runs a `schedule` subcommand.
pub async fn run(ctx: &Context, command: ScheduleCommand) -> anyhow::Result<ExitCode> {
    // Bad flags are refused before the cluster is reached.
    let spec = match &command {
        ScheduleCommand::Create(args) => Some(args.spec(ctx.global.namespace.as_deref())?),
        _ => None,
    };
    let client = ctx.connect().await?;
    let schedules = Schedules::new(client.clone(), &ctx.global.vbackup_namespace);
    let now = Timestamp::now();
    match command {
        ScheduleCommand::Create(args) => {
            let spec = spec.ok_or_else(|| anyhow::anyhow!("internal error: no spec"))?;
            // The location must exist now, not fail at 2 a.m.
            let location = Locations::new(client.clone(), &ctx.global.vbackup_namespace)
                .resolve(spec.template.storage_location.as_deref())
                .await?;
            let schedule = schedules
                .create(&args.name, &spec, &args.image, &location)
                .await?;
            if !print_structured(ctx.global.output, &schedule)? {
                println!(
                    "schedule {} created; next run {}; run it now with `kubectl vbackup schedule run-now {}`",
                    schedule.name,
                    next_run(&schedule, now),
                    schedule.name
                );
            }
        }
        ScheduleCommand::Get { name } => {
            let list = match name {
                Some(n) => vec![schedules.get(&n).await?],
                None => schedules.list().await?,
            };
            if !print_structured(ctx.global.output, &list)? {
                if list.is_empty() {
                    eprintln!(
                        "no schedules: create one with `kubectl vbackup schedule create NAME --schedule \"0 2 * * *\"`"
                    );
                } else {
                    print!("{}", schedules_table(&list, now));
                }
            }
        }
        ScheduleCommand::Describe { name } => {
            let s = schedules.get(&name).await?;
            if !print_structured(ctx.global.output, &s)? {
                print!("{}", describe(&s, now));
            }
        }
        ScheduleCommand::Pause { name } => {
            schedules.set_paused(&name, true).await?;
            println!("schedule {name} paused");
        }
        ScheduleCommand::Unpause { name } => {
            schedules.set_paused(&name, false).await?;
            println!("schedule {name} unpaused");
        }
        ScheduleCommand::Delete { name } => {
            schedules.delete(&name).await?;
            println!("schedule {name} deleted; its backups stay until they expire");
        }
        ScheduleCommand::RunNow { name } => {
            let job = schedules.run_now(&name).await?;
            println!(
                "job {job} started in namespace {}; follow it with `kubectl logs -n {} job/{job} -f`",
                ctx.global.vbackup_namespace, ctx.global.vbackup_namespace
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn next_run(s: &Schedule, now: Timestamp) -> String {
    if s.paused {
        return "<paused>".into();
    }
    s.next_run(now)
        .map_or_else(|| "<never>".into(), |t| t.to_string())
}

fn schedules_table(list: &[Schedule], now: Timestamp) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                if s.paused { "Paused" } else { "Enabled" }.into(),
                s.spec.schedule.clone(),
                s.spec.time_zone.clone().unwrap_or_else(|| "UTC".into()),
                s.last_schedule
                    .map_or_else(|| "<never>".into(), |t| t.to_string()),
                next_run(s, now),
                s.spec
                    .template
                    .storage_location
                    .clone()
                    .unwrap_or_else(|| "<default>".into()),
                humantime::format_duration(s.spec.template.ttl).to_string(),
            ]
        })
        .collect();
    table(
        &[
            "NAME",
            "STATUS",
            "SCHEDULE",
            "TIME ZONE",
            "LAST RUN",
            "NEXT RUN",
            "STORAGE LOCATION",
            "TTL",
        ],
        &rows,
    )
}

fn describe(s: &Schedule, now: Timestamp) -> String {
    let t = &s.spec.template;
    let list = |v: &[String], empty: &str| {
        if v.is_empty() {
            empty.to_string()
        } else {
            v.join(", ")
        }
    };
    let r = &s.spec.retention;
    let keep = [
        ("last", r.keep_last),
        ("daily", r.keep_daily),
        ("weekly", r.keep_weekly),
        ("monthly", r.keep_monthly),
    ]
    .iter()
    .filter_map(|(k, v)| v.map(|n| format!("{k} {n}")))
    .collect::<Vec<_>>();
    format!(
        "Name:               {}\nStatus:             {}\nSchedule:           {}\nTime zone:          {}\n\
         Last run:           {}\nNext run:           {}\nImage:              {}\n\
         Storage location:   {}\nNamespaces:         {} (excluded: {})\nResources:          {} (excluded: {})\n\
         Selector:           {}\nTTL:                {}\nKeep:               {}\nVolume data:        {}\n\
         Verify:             {}\n",
        s.name,
        if s.paused { "Paused" } else { "Enabled" },
        s.spec.schedule,
        s.spec.time_zone.as_deref().unwrap_or("UTC"),
        s.last_schedule
            .map_or_else(|| "<never>".into(), |t| t.to_string()),
        next_run(s, now),
        s.image,
        t.storage_location.as_deref().unwrap_or("<default>"),
        list(&t.namespaces.include, "*"),
        list(&t.namespaces.exclude, "<none>"),
        list(&t.resources.include, "*"),
        list(&t.resources.exclude, "<none>"),
        if t.selector.is_empty() {
            "<none>"
        } else {
            &t.selector
        },
        humantime::format_duration(t.ttl),
        if keep.is_empty() {
            "until the TTL runs out".to_string()
        } else {
            keep.join(", ")
        },
        if t.volumes.back_up_volumes == Some(false) {
            "not copied"
        } else if t.volumes.snapshot_volumes {
            "CSI snapshots"
        } else {
            "copied (file system backup)"
        },
        match s.spec.verify_every {
            0 => "never".to_string(),
            1 => "every successful backup".to_string(),
            n => format!("every {n} successful backups"),
        },
    )
}
