//! `kubectl vbackup location …`: where backups are kept.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
use vbackup_engine::store::Locations;
use vbackup_engine::store::location::{
    AccessMode, BackupStorageLocation, BackupStorageLocationSpec, FilesystemSpec, Provider, S3Spec,
    SecretRef,
};

use super::Context;
use crate::output::{print_structured, table};

/// The `location` subcommands.
#[derive(Debug, Subcommand)]
pub enum LocationCommand {
    /// Create a storage location (checked before it is saved).
    Create(CreateArgs),
    /// List storage locations, or show one.
    Get {
        /// Only this location.
        name: Option<String>,
    },
    /// Show a location in detail, with its last check.
    Describe {
        /// The location.
        name: String,
    },
    /// Delete a location object; the backups stored in it are left untouched.
    Delete {
        /// The location.
        name: String,
    },
    /// Make a location ReadOnly (or ReadWrite again with --off).
    SetReadonly {
        /// The location.
        name: String,
        /// Make it ReadWrite again.
        #[arg(long)]
        off: bool,
    },
    /// Check a location: reachable, bucket exists, and a probe object round trip when writable.
    Check {
        /// The location.
        name: String,
    },
}

/// Providers accepted by `--provider`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ProviderArg {
    /// Any S3-compatible service (AWS, OVHcloud, Scaleway, MinIO…).
    S3,
    /// A local directory.
    Filesystem,
}

/// Access modes accepted by `--access-mode`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum AccessModeArg {
    #[value(name = "ReadWrite")]
    ReadWrite,
    #[value(name = "ReadOnly")]
    ReadOnly,
}

/// Arguments of `location create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Name of the location.
    pub name: String,
    /// Kind of store.
    #[arg(long, value_enum)]
    pub provider: ProviderArg,
    /// S3 bucket (must exist).
    #[arg(long)]
    pub bucket: Option<String>,
    /// Folder inside the bucket.
    #[arg(long)]
    pub prefix: Option<String>,
    /// S3 region (e.g. gra, fr-par, eu-west-3).
    #[arg(long)]
    pub region: Option<String>,
    /// S3 endpoint URL for non-AWS services, e.g. https://s3.gra.io.cloud.ovh.net.
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// Path-style bucket addressing (MinIO and most self-hosted services).
    #[arg(long)]
    pub path_style: bool,
    /// Secret in the vbackup namespace with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY
    /// (or Velero's `cloud` file).
    #[arg(long, value_name = "NAME")]
    pub credentials_secret: Option<String>,
    /// Directory for provider filesystem (absolute).
    #[arg(long, value_name = "DIR")]
    pub path: Option<String>,
    /// ReadOnly for a cluster that only restores.
    #[arg(long, value_enum, default_value = "ReadWrite")]
    pub access_mode: AccessModeArg,
    /// Use this location when a command names none.
    #[arg(long)]
    pub default: bool,
    /// Save the location without checking that it works.
    #[arg(long)]
    pub skip_check: bool,
}

impl CreateArgs {
    fn spec(&self) -> anyhow::Result<BackupStorageLocationSpec> {
        let s3_flags = self.bucket.is_some()
            || self.prefix.is_some()
            || self.region.is_some()
            || self.endpoint.is_some()
            || self.path_style
            || self.credentials_secret.is_some();
        let (provider, s3, filesystem) = match self.provider {
            ProviderArg::S3 => {
                let bucket = self
                    .bucket
                    .clone()
                    .context("provider s3 needs a bucket: add --bucket NAME")?;
                let credentials_secret = self.credentials_secret.clone().context(
                    "provider s3 needs credentials: add --credentials-secret NAME (a Secret with \
                     AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)",
                )?;
                let s3 = S3Spec {
                    bucket,
                    prefix: self.prefix.clone(),
                    region: self.region.clone(),
                    endpoint: self.endpoint.clone(),
                    force_path_style: self.path_style,
                    credentials_secret: Some(SecretRef {
                        name: credentials_secret,
                    }),
                };
                (
                    Provider::S3,
                    Some(s3),
                    self.path.clone().map(|path| FilesystemSpec { path }),
                )
            }
            ProviderArg::Filesystem => {
                if s3_flags {
                    anyhow::bail!(
                        "--bucket, --prefix, --region, --endpoint, --path-style and --credentials-secret are for --provider s3"
                    );
                }
                let path = self
                    .path
                    .clone()
                    .context("provider filesystem needs a directory: add --path DIR")?;
                let path = absolute(&path)?;
                (Provider::Filesystem, None, Some(FilesystemSpec { path }))
            }
        };
        let access_mode = match self.access_mode {
            AccessModeArg::ReadWrite => AccessMode::ReadWrite,
            AccessModeArg::ReadOnly => AccessMode::ReadOnly,
        };
        Ok(BackupStorageLocationSpec {
            provider,
            s3,
            filesystem,
            access_mode,
            default: self.default,
        })
    }
}

/// Resolves a relative `--path` against the current directory, as users expect.
fn absolute(path: &str) -> anyhow::Result<String> {
    let path =
        std::path::absolute(path).with_context(|| format!("cannot resolve --path {path}"))?;
    path.to_str()
        .map(str::to_owned)
        .context("--path must be valid UTF-8")
}

/// Runs a `location` subcommand.
pub async fn run(ctx: &Context, command: LocationCommand) -> anyhow::Result<ExitCode> {
    // Bad flags are reported before any connection is attempted.
    let spec = match &command {
        LocationCommand::Create(args) => {
            Some(args.spec().and_then(|s| Ok(s.validate().map(|()| s)?))?)
        }
        _ => None,
    };
    let conn = ctx.connect().await?;
    let locations = Locations::new(conn.client, &ctx.global.vbackup_namespace);
    match command {
        LocationCommand::Create(args) => {
            let spec = spec.context("spec computed above")?;
            let (created, report) = locations.create(&args.name, spec, !args.skip_check).await?;
            if !print_structured(ctx.global.output, &created)? {
                let checked = match report {
                    Some(r) if r.probe_round_trip => {
                        " (checked: reachable, probe written, read and deleted)"
                    }
                    Some(_) => " (checked: reachable; read-only, nothing written)",
                    None => " (not checked)",
                };
                println!(
                    "storage location {} created at {}{checked}",
                    args.name,
                    created.spec.url()
                );
            }
        }
        LocationCommand::Get { name } => {
            let items = match name {
                Some(name) => vec![locations.get(&name).await?],
                None => locations.list().await?,
            };
            if !print_structured(ctx.global.output, &items)? {
                if items.is_empty() {
                    eprintln!(
                        "no storage locations: create one with `kubectl vbackup location create`"
                    );
                } else {
                    print!("{}", location_table(&items));
                }
            }
        }
        LocationCommand::Describe { name } => {
            let location = locations.get(&name).await?;
            if !print_structured(ctx.global.output, &location)? {
                print!("{}", describe(&location));
            }
        }
        LocationCommand::Delete { name } => {
            locations.delete(&name).await?;
            println!("storage location {name} deleted (the data in it was not touched)");
        }
        LocationCommand::SetReadonly { name, off } => {
            let mode = if off {
                AccessMode::ReadWrite
            } else {
                AccessMode::ReadOnly
            };
            let updated = locations.set_access_mode(&name, mode).await?;
            if !print_structured(ctx.global.output, &updated)? {
                println!("storage location {name} is now {mode}");
            }
        }
        LocationCommand::Check { name } => {
            let (updated, outcome) = locations.check(&name).await?;
            if !print_structured(ctx.global.output, &updated)? {
                match &outcome {
                    Ok(r) if r.probe_round_trip => {
                        println!(
                            "storage location {name} is available: reachable, probe written, read back and deleted"
                        )
                    }
                    Ok(_) => println!(
                        "storage location {name} is available (ReadOnly: reachable, nothing written)"
                    ),
                    Err(e) => eprintln!("storage location {name} is unavailable: {e}"),
                }
            }
            return Ok(if outcome.is_ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn location_table(items: &[BackupStorageLocation]) -> String {
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|l| {
            let status = l.status.clone().unwrap_or_default();
            vec![
                l.metadata.name.clone().unwrap_or_default(),
                l.spec.provider.to_string(),
                l.spec.url(),
                l.spec.access_mode.to_string(),
                if l.spec.default {
                    "true".into()
                } else {
                    String::new()
                },
                status
                    .phase
                    .map(|p| format!("{p:?}"))
                    .unwrap_or_else(|| "Unknown".into()),
                status.last_validation_time.unwrap_or_default(),
            ]
        })
        .collect();
    table(
        &[
            "NAME",
            "PROVIDER",
            "URL",
            "ACCESS",
            "DEFAULT",
            "PHASE",
            "LAST CHECKED",
        ],
        &rows,
    )
}

fn describe(l: &BackupStorageLocation) -> String {
    let status = l.status.clone().unwrap_or_default();
    let mut out = format!(
        "Name:          {}\nNamespace:     {}\nProvider:      {}\nURL:           {}\nAccess mode:   {}\nDefault:       {}\n",
        l.metadata.name.as_deref().unwrap_or_default(),
        l.metadata.namespace.as_deref().unwrap_or_default(),
        l.spec.provider,
        l.spec.url(),
        l.spec.access_mode,
        l.spec.default,
    );
    if let Some(s3) = &l.spec.s3 {
        out += &format!(
            "Region:        {}\nPath style:    {}\nCredentials:   Secret {}\n",
            s3.region.as_deref().unwrap_or("us-east-1"),
            s3.force_path_style,
            s3.credentials_secret
                .as_ref()
                .map(|s| s.name.as_str())
                .unwrap_or("(none)"),
        );
    }
    out += &format!(
        "Phase:         {}\nLast checked:  {}\nMessage:       {}\n",
        status
            .phase
            .map(|p| format!("{p:?}"))
            .unwrap_or_else(|| "Unknown".into()),
        status.last_validation_time.as_deref().unwrap_or("never"),
        status.message.as_deref().unwrap_or(""),
    );
    out
}
