//! `kubectl vbackup location …`: where backups are kept.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
use vbackup_engine::keys::LocationKey;
use vbackup_engine::store::location::{
    AccessMode, BackupStorageLocation, BackupStorageLocationSpec, FilesystemSpec, Format,
    NfsExport, PodAccess, Provider, S3Spec, SecretRef,
};
use vbackup_engine::store::{Created, KeyOrigin, Locations};

use super::Context;
use crate::output::{print_structured, table};

/// The `location` subcommands.
#[derive(Debug, Subcommand)]
pub enum LocationCommand {
    /// Create a storage location (checked before it is saved).
    Create(LocationCreateArgs),
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
        #[arg(long, value_name = "BOOL", default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set)]
        off: bool,
    },
    /// Make a location the default one (used when a command names none); the others stop
    /// being default.
    SetDefault {
        /// The location.
        name: String,
    },
    /// Check a location: reachable, bucket exists, and a probe object round trip when writable.
    Check {
        /// The location.
        name: String,
        /// Also check from inside the cluster: a probe mover pod (in the vbackup namespace)
        /// must reach the location too, as every volume copy will.
        #[arg(long, value_name = "BOOL", default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set)]
        from_cluster: bool,
        #[command(flatten)]
        movers: super::volumes::MoverArgs,
    },
    /// Use an existing location key (e.g. a new cluster reading an old cluster's backups);
    /// it must open every repository in the location.
    ImportKey {
        /// The location.
        name: String,
        /// File holding the key as printed by `location create` (`-` for stdin).
        #[arg(long, value_name = "FILE")]
        key_file: PathBuf,
    },
    /// Replace the location key and re-seal every repository password with the new one.
    RotateKey {
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

/// Values of `--pod-access`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PodAccessArg {
    /// The same directory on the node.
    #[value(name = "hostPath", alias = "hostpath")]
    HostPath,
}

/// Layouts accepted by `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// vbackup's own layout.
    Vbackup,
    /// A Velero bucket, read only.
    Velero,
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
pub struct LocationCreateArgs {
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
    #[arg(long, value_name = "BOOL", default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub path_style: bool,
    /// Secret in the vbackup namespace with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY
    /// (or Velero's `cloud` file).
    #[arg(long, value_name = "NAME")]
    pub credentials_secret: Option<String>,
    /// Directory for provider filesystem (absolute).
    #[arg(long, value_name = "DIR")]
    pub path: Option<String>,
    /// How mover pods reach a filesystem location: hostPath (the same directory on the node:
    /// one-node clusters and the demo). Without it or --nfs, volume data cannot be copied to
    /// the directory.
    #[arg(long, value_name = "hostPath")]
    pub pod_access: Option<PodAccessArg>,
    /// Mover pods reach a filesystem location through this NFS export (SERVER:/PATH).
    #[arg(long, value_name = "SERVER:/PATH", conflicts_with = "pod_access")]
    pub nfs: Option<String>,
    /// ReadOnly for a cluster that only restores (always ReadOnly with --format velero).
    #[arg(long, value_enum)]
    pub access_mode: Option<AccessModeArg>,
    /// `velero`: the bucket (and --prefix) Velero writes to, read only — its backups are
    /// listed, described and restored, restic-era volume data included.
    #[arg(long, value_enum, default_value = "vbackup")]
    pub format: FormatArg,
    /// With --format velero: Secret with Velero's restic repository password (key
    /// `repository-password`, as in Velero's velero-repo-credentials); Velero's default
    /// password when unset.
    #[arg(long, value_name = "NAME")]
    pub repository_password_secret: Option<String>,
    /// Use this location when a command names none.
    #[arg(long, value_name = "BOOL", default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub default: bool,
    /// Save the location without checking that it works (nor that the key opens what is there).
    #[arg(long, value_name = "BOOL", default_value_t = false, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub skip_check: bool,
    /// Use the location key in FILE (`-` for stdin) instead of generating one: to read backups
    /// that another cluster wrote. Keys are never passed as arguments.
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
}

impl LocationCreateArgs {
    fn spec(&self) -> anyhow::Result<BackupStorageLocationSpec> {
        let s3_flags = self.bucket.is_some()
            || self.prefix.is_some()
            || self.region.is_some()
            || self.endpoint.is_some()
            || self.path_style
            || self.credentials_secret.is_some();
        if matches!(self.provider, ProviderArg::S3)
            && (self.pod_access.is_some() || self.nfs.is_some())
        {
            anyhow::bail!(
                "--pod-access and --nfs are for --provider filesystem: movers reach S3 at its endpoint"
            );
        }
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
                    self.path.clone().map(|path| FilesystemSpec {
                        path,
                        pod_access: None,
                    }),
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
                let pod_access = match (&self.pod_access, &self.nfs) {
                    (Some(PodAccessArg::HostPath), _) => Some(PodAccess {
                        host_path: true,
                        nfs: None,
                    }),
                    (None, Some(nfs)) => {
                        let (server, export) = nfs.split_once(':').filter(|(s, p)| !s.is_empty() && p.starts_with('/')).with_context(|| {
                            format!("--nfs {nfs:?}: expected SERVER:/PATH, e.g. 10.0.0.5:/exports/backups")
                        })?;
                        Some(PodAccess {
                            host_path: false,
                            nfs: Some(NfsExport {
                                server: server.into(),
                                path: export.into(),
                            }),
                        })
                    }
                    (None, None) => None,
                };
                (
                    Provider::Filesystem,
                    None,
                    Some(FilesystemSpec { path, pod_access }),
                )
            }
        };
        let format = match self.format {
            FormatArg::Vbackup => Format::Vbackup,
            FormatArg::Velero => Format::Velero,
        };
        let access_mode = match (self.access_mode, format) {
            (None, Format::Velero) | (Some(AccessModeArg::ReadOnly), _) => AccessMode::ReadOnly,
            (None | Some(AccessModeArg::ReadWrite), _) => AccessMode::ReadWrite,
        };
        if self.key_file.is_some() && format == Format::Velero {
            anyhow::bail!(
                "--key-file is for vbackup locations: a Velero bucket is read with Velero's \
                 repository password (--repository-password-secret)"
            );
        }
        Ok(BackupStorageLocationSpec {
            provider,
            s3,
            filesystem,
            access_mode,
            default: self.default,
            format,
            repository_password_secret: self
                .repository_password_secret
                .clone()
                .map(|name| SecretRef { name }),
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
            let spec = args.spec().and_then(|s| Ok(s.validate().map(|()| s)?))?;
            let key = args.key_file.as_deref().map(read_key_file).transpose()?;
            Some((spec, key))
        }
        _ => None,
    };
    let client = ctx.connect().await?;
    let locations = Locations::new(client.clone(), &ctx.global.vbackup_namespace);
    match command {
        LocationCommand::Create(args) => {
            let (spec, key) = spec.context("spec computed above")?;
            let created = locations
                .create(&args.name, spec, !args.skip_check, key)
                .await?;
            print_created(ctx, &args.name, &created)?;
        }
        LocationCommand::ImportKey { name, key_file } => {
            let key = read_key_file(&key_file)?;
            let namespaces = locations.import_key(&name, &key).await?;
            println!(
                "location key of {name} imported; it opens the {} repositories in the location{}",
                namespaces.len(),
                list_suffix(&namespaces)
            );
        }
        LocationCommand::RotateKey { name } => {
            let (key, namespaces) = locations.rotate_key(&name).await?;
            println!(
                "location key of {name} rotated; {} repository passwords re-sealed{}",
                namespaces.len(),
                list_suffix(&namespaces)
            );
            print_key_once(&key);
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
        LocationCommand::SetDefault { name } => {
            let updated = locations.set_default(&name).await?;
            if !print_structured(ctx.global.output, &updated)? {
                println!("storage location {name} is now the default");
            }
        }
        LocationCommand::Check {
            name,
            from_cluster,
            movers,
        } => {
            let (updated, mut outcome) = locations.check(&name).await?;
            if from_cluster && outcome.is_ok() {
                let step = super::volumes::mover_step(
                    &locations,
                    &updated,
                    &movers,
                    None,
                    std::sync::Arc::new(vbackup_engine::volumes::step::Quiet),
                )
                .await?;
                if let Err(e) = step.probe(&client, &ctx.global.vbackup_namespace).await {
                    outcome = Err(e);
                }
            }
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
            // The check ran; an unavailable location is its result, not an error.
            return Ok(if outcome.is_ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(super::EXIT_INCOMPLETE)
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads a location key from a file or stdin (`-`), never from the command line.
fn read_key_file(path: &Path) -> anyhow::Result<LocationKey> {
    let text = if path == Path::new("-") {
        std::io::read_to_string(std::io::stdin()).context("cannot read the key from stdin")?
    } else {
        std::fs::read_to_string(path)
            .with_context(|| format!("cannot read key file {}", path.display()))?
    };
    Ok(LocationKey::parse(&text)?)
}

fn print_created(ctx: &Context, name: &str, created: &Created) -> anyhow::Result<()> {
    let generated = match &created.key {
        KeyOrigin::Generated(key) => Some(key),
        _ => None,
    };
    if ctx.global.output != crate::output::OutputFormat::Table {
        // Structured output must carry a generated key too, or it would be lost.
        let mut value = serde_json::to_value(&created.location)?;
        if let Some(key) = generated {
            value["locationKey"] = serde_json::Value::String(key.to_text());
        }
        print_structured(ctx.global.output, &value)?;
        return Ok(());
    }
    let checked = match created.check {
        Some(r) if r.probe_round_trip => " (checked: reachable, probe written, read and deleted)",
        Some(_) => " (checked: reachable; read-only, nothing written)",
        None => " (not checked)",
    };
    println!(
        "storage location {name} created at {}{checked}",
        created.location.spec.url()
    );
    match &created.key {
        KeyOrigin::Generated(key) => print_key_once(key),
        KeyOrigin::Imported => println!("using the location key from --key-file"),
        KeyOrigin::Existing => {
            println!("kept the existing location key in Secret {name}-location-key")
        }
        KeyOrigin::NotNeeded => println!(
            "a Velero bucket, read only: list its backups with `kubectl vbackup backup get \
             --storage-location {name}`"
        ),
    }
    Ok(())
}

fn print_key_once(key: &LocationKey) {
    println!();
    println!("Location key (shown once):");
    println!();
    println!("    {}", key.to_text());
    println!();
    println!(
        "Store it outside this cluster (a password manager, a vault). Every volume repository"
    );
    println!(
        "in this location is sealed with it: without it, a new cluster cannot read these backups."
    );
    println!(
        "Restore access with `kubectl vbackup location create … --key-file FILE` or `location import-key`."
    );
}

fn list_suffix(namespaces: &[String]) -> String {
    if namespaces.is_empty() {
        String::new()
    } else {
        format!(": {}", namespaces.join(", "))
    }
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
