//! Benchmark of the object half of backup and restore: the plugin backs up and restores a
//! namespace of ConfigMaps and Secrets held by the test API server, and this reports
//! objects per second and the plugin's peak memory (GNU time's maximum RSS).
//!
//! ```text
//! cargo build -p kubectl-vbackup
//! cargo run -p kubectl-vbackup --example objects_bench -- [CONFIGMAPS…] [--secrets N] [--plugin PATH]
//! ```
//!
//! Defaults: 1000 and 10000 ConfigMaps, each run with 2000 Secrets, on a filesystem
//! location. The test API server runs in this process, so it competes with the plugin for
//! the CPU; the plugin's own memory is measured alone.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};
use tokio::task::JoinSet;
use vbackup_engine::cluster::{ClusterOptions, connect};
use vbackup_engine::store::location::{FilesystemSpec, Provider};
use vbackup_engine::store::{AccessMode, BackupStorageLocationSpec, Locations, SYSTEM_NAMESPACE};
use vbackup_testcluster::TestCluster;

const NAMESPACE: &str = "bench";
const PARALLEL_CREATES: usize = 16;

#[derive(Debug)]
struct Measure {
    seconds: f64,
    peak_rss_kib: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut sizes = Vec::new();
    let mut secrets = 2000usize;
    let mut plugin = default_plugin()?;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--secrets" => secrets = args.next().context("--secrets N")?.parse()?,
            "--plugin" => plugin = PathBuf::from(args.next().context("--plugin PATH")?),
            n => sizes.push(
                n.parse::<usize>()
                    .with_context(|| format!("not a number: {n}"))?,
            ),
        }
    }
    if sizes.is_empty() {
        sizes = vec![1000, 10000];
    }
    if !plugin.exists() {
        bail!(
            "{} not found: run `cargo build -p kubectl-vbackup` first or pass --plugin PATH",
            plugin.display()
        );
    }
    println!(
        "| ConfigMaps | Secrets | objects | backup s | backup obj/s | backup peak RSS MiB | archive KiB | restore s | restore obj/s | restore peak RSS MiB |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for configmaps in sizes {
        run(&plugin, configmaps, secrets).await?;
    }
    Ok(())
}

fn default_plugin() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .context("cannot locate the target directory")?;
    Ok(dir.join("kubectl-vbackup"))
}

async fn run(plugin: &Path, configmaps: usize, secrets: usize) -> anyhow::Result<()> {
    let cluster = TestCluster::start()?;
    let kubeconfig = cluster.kubeconfig_path().to_path_buf();
    let client = connect(&ClusterOptions {
        kubeconfig: Some(kubeconfig.clone()),
        context: None,
    })
    .await?;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for (_, crd) in vbackup_engine::crds::all() {
        crds.create(&PostParams::default(), &crd).await?;
    }
    let dir = tempfile::tempdir()?;
    let spec = BackupStorageLocationSpec {
        provider: Provider::Filesystem,
        s3: None,
        filesystem: Some(FilesystemSpec {
            path: dir.path().join("store").display().to_string(),
            pod_access: None,
        }),
        access_mode: AccessMode::ReadWrite,
        default: true,
        format: Default::default(),
        repository_password_secret: None,
    };
    Locations::new(client.clone(), SYSTEM_NAMESPACE)
        .create("local", spec, true, None)
        .await?;
    populate(&client, configmaps, secrets).await?;
    let objects = configmaps + secrets;

    let name = format!("bench-{configmaps}");
    let backup = timed(
        plugin,
        &kubeconfig,
        &["backup", "create", &name, "--include-namespaces", NAMESPACE],
    )?;
    let archive = std::fs::metadata(
        dir.path()
            .join(format!("store/backups/{name}/resources.tar.gz")),
    )?
    .len();
    delete_namespace(&client).await?;
    let restore = timed(
        plugin,
        &kubeconfig,
        &["restore", "create", "--from-backup", &name],
    )?;
    let restored = Api::<ConfigMap>::namespaced(client.clone(), NAMESPACE)
        .list(&Default::default())
        .await?
        .items
        .len()
        + Api::<Secret>::namespaced(client.clone(), NAMESPACE)
            .list(&Default::default())
            .await?
            .items
            .len();
    // kube-root-ca.crt is published by the cluster itself, not restored.
    if restored < objects {
        bail!("only {restored} of {objects} objects came back");
    }
    let rate = |m: &Measure| objects as f64 / m.seconds;
    println!(
        "| {configmaps} | {secrets} | {objects} | {:.1} | {:.0} | {:.1} | {} | {:.1} | {:.0} | {:.1} |",
        backup.seconds,
        rate(&backup),
        backup.peak_rss_kib as f64 / 1024.0,
        archive / 1024,
        restore.seconds,
        rate(&restore),
        restore.peak_rss_kib as f64 / 1024.0,
    );
    Ok(())
}

/// Creates the namespace's ConfigMaps (1 KiB of text each) and Secrets (256 bytes each).
async fn populate(client: &Client, configmaps: usize, secrets: usize) -> anyhow::Result<()> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(NAMESPACE.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    namespaces.create(&PostParams::default(), &ns).await?;
    let mut tasks = JoinSet::new();
    for i in 0..configmaps + secrets {
        if tasks.len() >= PARALLEL_CREATES {
            tasks.join_next().await.context("task")???;
        }
        let client = client.clone();
        tasks.spawn(async move {
            let meta = |kind: &str| ObjectMeta {
                name: Some(format!("{kind}-{i:05}")),
                labels: Some([("app".to_string(), "bench".to_string())].into()),
                ..Default::default()
            };
            if i < configmaps {
                let cm = ConfigMap {
                    metadata: meta("config"),
                    data: Some(
                        [(
                            "settings.conf".to_string(),
                            format!("# {i}\n{}", "key = value\n".repeat(85)),
                        )]
                        .into(),
                    ),
                    ..Default::default()
                };
                Api::<ConfigMap>::namespaced(client, NAMESPACE)
                    .create(&PostParams::default(), &cm)
                    .await?;
            } else {
                let s = Secret {
                    metadata: meta("secret"),
                    data: Some(
                        [(
                            "token".to_string(),
                            ByteString(format!("{i:0256}").into_bytes()),
                        )]
                        .into(),
                    ),
                    ..Default::default()
                };
                Api::<Secret>::namespaced(client, NAMESPACE)
                    .create(&PostParams::default(), &s)
                    .await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    Ok(())
}

async fn delete_namespace(client: &Client) -> anyhow::Result<()> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .delete(NAMESPACE, &DeleteParams::default())
        .await?;
    let deadline = Instant::now() + Duration::from_secs(600);
    while namespaces.get_opt(NAMESPACE).await?.is_some() {
        if Instant::now() > deadline {
            bail!("namespace {NAMESPACE} was not deleted within 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

/// Runs the plugin under GNU time and returns wall time and peak RSS.
fn timed(plugin: &Path, kubeconfig: &Path, args: &[&str]) -> anyhow::Result<Measure> {
    let out = Command::new("/usr/bin/time")
        .args(["-f", "VBACKUP_TIME %e %M"])
        .arg(plugin)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .context("run the plugin under /usr/bin/time")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!(
            "kubectl-vbackup {args:?} failed:\n{}\n{stderr}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let line = stderr
        .lines()
        .rev()
        .find(|l| l.starts_with("VBACKUP_TIME "))
        .context("no timing line from /usr/bin/time")?;
    let mut parts = line.split_whitespace().skip(1);
    let seconds: f64 = parts.next().context("elapsed")?.parse()?;
    let peak_rss_kib: u64 = parts.next().context("max RSS")?.parse()?;
    Ok(Measure {
        seconds,
        peak_rss_kib,
    })
}
