//! Hooks of a restore: init containers added to restored pods (`init.hook.restore…`),
//! post-restore exec hooks once their container runs or is Ready, and streaming dumps fed
//! back on the stdin of each workload's `vbackup.io/restore-command`.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Pod};
use kube::api::ListParams;
use kube::{Api, Client};
use serde_json::Value;

use super::annotations::{DEFAULT_WAIT_TIMEOUT, PodAnnotations, RESTORE_COMMAND};
use super::backup::{HookReport, HookRun, run_hook, workload_of};
use super::dump::{self, DumpRecord};
use super::spec::HookFile;
use super::{OnError, RestoreExecHook};
use crate::backups::BackupRecord;
use crate::repo::VolumeRepo;
use crate::resources::types::ObjectRef;
use crate::restore::actions::common::RESTORE_LABEL;
use crate::restore::request::RestoreRequest;
use crate::volumes::plan::as_admitted;

/// Adds the init containers of a pod's init restore hook (annotations, else the hooks
/// file) in front of its own; returns what was wrong with the hook's settings.
pub fn add_init_containers(pod: &mut Value, file: &HookFile) -> Vec<String> {
    let Ok(typed) = serde_json::from_value::<Pod>(pod.clone()) else {
        return Vec::new();
    };
    let map = typed.metadata.annotations.clone().unwrap_or_default();
    let a = PodAnnotations {
        pod: format!(
            "{}/{}",
            typed.metadata.namespace.as_deref().unwrap_or_default(),
            typed.metadata.name.as_deref().unwrap_or_default()
        ),
        map: &map,
    };
    let (hook, problems) = a.init_hook();
    let containers: Vec<Container> = match hook {
        Some(h) => vec![Container {
            name: h.name,
            image: Some(h.image),
            command: Some(h.command).filter(|c| !c.is_empty()),
            ..Default::default()
        }],
        None => file.restore_hooks(&typed).1,
    };
    if !containers.is_empty()
        && let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut)
    {
        let mut all: Vec<Value> = containers
            .iter()
            .filter_map(|c| serde_json::to_value(c).ok())
            .collect();
        if let Some(Value::Array(own)) = spec.get("initContainers") {
            all.extend(own.iter().cloned());
        }
        spec.insert("initContainers".into(), Value::Array(all));
    }
    problems.iter().map(ToString::to_string).collect()
}

fn container_state(pod: &Pod, container: &str) -> (bool, bool) {
    let statuses = pod.status.as_ref().map(|s| {
        s.container_statuses
            .iter()
            .flatten()
            .chain(s.init_container_statuses.iter().flatten())
            .cloned()
            .collect::<Vec<_>>()
    });
    statuses
        .into_iter()
        .flatten()
        .find(|c| c.name == container)
        .map(|c| {
            let running = c.state.as_ref().is_some_and(|s| s.running.is_some());
            (running, running && c.ready)
        })
        .unwrap_or((false, false))
}

/// Waits until `pod` exists and `container` runs (or is Ready); gives the fresh pod.
async fn wait_for(
    pods: &Api<Pod>,
    pod: &str,
    container: Option<&str>,
    ready: bool,
    limit: Duration,
) -> Result<Pod, String> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(Some(p)) = pods.get_opt(pod).await {
            let c = container.map(str::to_string).or_else(|| {
                p.spec
                    .as_ref()
                    .and_then(|s| s.containers.first())
                    .map(|c| c.name.clone())
            });
            let (running, is_ready) = c
                .as_deref()
                .map_or((false, false), |c| container_state(&p, c));
            if (ready && is_ready) || (!ready && running) {
                return Ok(p);
            }
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "container {} of pod {pod} was not {} within {}",
                container.unwrap_or("(first)"),
                if ready { "Ready" } else { "running" },
                humantime::format_duration(limit)
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Runs the post-restore exec hooks of the pods this restore created, and feeds each
/// completed dump of the backup to its workload's restore command. `open` opens a source
/// namespace's repository.
pub async fn after_restore(
    client: &Client,
    request: &RestoreRequest,
    backup: &BackupRecord,
    file: &HookFile,
    open: &(
         dyn Fn(String) -> futures::future::BoxFuture<'static, crate::Result<VolumeRepo>> + Sync
     ),
) -> HookReport {
    let mut report = HookReport::default();
    exec_hooks(client, request, file, &mut report).await;
    for d in backup
        .status
        .dumps
        .iter()
        .filter(|d| d.phase == dump::COMPLETED && request.namespaces.matches(&d.namespace))
    {
        restore_dump(client, request, d, open, &mut report).await;
    }
    report
}

/// The post-restore hooks of every pod this restore created (they carry its label).
async fn exec_hooks(
    client: &Client,
    request: &RestoreRequest,
    file: &HookFile,
    report: &mut HookReport,
) {
    let selector = format!("{RESTORE_LABEL}={}", request.name);
    let all: Api<Pod> = Api::all(client.clone());
    let list = match all.list(&ListParams::default().labels(&selector)).await {
        Ok(l) => l,
        Err(e) => {
            report.warnings.push(format!(
                "restored pods could not be listed, so their post-restore hooks did not run: {e}"
            ));
            return;
        }
    };
    for pod in list.items {
        let map = pod.metadata.annotations.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let ns = ns.as_str();
        let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
        let a = PodAnnotations {
            pod: format!("{ns}/{name}"),
            map: &map,
        };
        let (hook, problems) = a.restore_hook();
        let (_, init_problems) = a.init_hook();
        report.warnings.extend(
            problems
                .iter()
                .chain(&init_problems)
                .map(ToString::to_string),
        );
        let hooks: Vec<RestoreExecHook> = match hook {
            Some(h) => vec![h],
            None => file.restore_hooks(&pod).0,
        };
        for hook in hooks {
            let waited = wait_for(
                &pods,
                &name,
                hook.exec.container.as_deref(),
                hook.wait_for_ready,
                hook.wait_timeout,
            )
            .await;
            let run = match waited {
                Ok(fresh) => run_hook(client, &fresh, &hook.exec, "post-restore").await,
                Err(e) => HookRun {
                    pod: ObjectRef::namespaced("pods", ns, &name),
                    when: "post-restore",
                    origin: hook.exec.origin.clone(),
                    container: hook.exec.container.clone().unwrap_or_default(),
                    exit_code: None,
                    duration: Duration::ZERO,
                    output: String::new(),
                    error: Some(e),
                    on_error: hook.exec.on_error,
                },
            };
            let stop = run.error.is_some() && run.on_error == OnError::Fail;
            super::backup::record_run(report, run);
            if stop {
                break;
            }
        }
    }
}

/// The pod to restore a dump into: the one of the same name, else a Ready pod of the same
/// workload (Deployments' pods get new names), waiting for one to appear.
async fn dump_target(pods: &Api<Pod>, d: &DumpRecord, limit: Duration) -> Result<Pod, String> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(list) = pods.list(&ListParams::default()).await {
            let ready = |p: &Pod| container_state(p, &d.container).1;
            let same = list
                .items
                .iter()
                .find(|p| p.metadata.name.as_deref() == Some(&d.pod) && ready(p));
            let sibling = || {
                let mut s: Vec<&Pod> = list
                    .items
                    .iter()
                    .filter(|p| d.workload.is_some() && workload_of(p) == d.workload && ready(p))
                    .collect();
                s.sort_by_key(|p| p.metadata.name.clone());
                s.first().copied()
            };
            if let Some(p) = same.or_else(sibling) {
                return Ok(p.clone());
            }
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "no Ready pod {} (or of {}) with container {} appeared within {}",
                d.pod,
                d.workload.as_deref().unwrap_or("its workload"),
                d.container,
                humantime::format_duration(limit)
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn restore_dump(
    client: &Client,
    request: &RestoreRequest,
    d: &DumpRecord,
    open: &(
         dyn Fn(String) -> futures::future::BoxFuture<'static, crate::Result<VolumeRepo>> + Sync
     ),
    report: &mut HookReport,
) {
    let ns = request.target_namespace(&d.namespace).to_string();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let started = Instant::now();
    let object = ObjectRef::namespaced("pods", &ns, &d.pod);
    let outcome: Result<(String, u64, String), String> = async {
        let pod = dump_target(&pods, d, DEFAULT_WAIT_TIMEOUT).await?;
        // A pod the webhook missed (down or slow while the workload came back) restores as
        // one it annotated: the same policy function decides.
        let pod = as_admitted(client, &pod)
            .await
            .map_err(|e| format!("the admission policy of pod {ns}/{} cannot be read: {e}", d.pod))?;
        let name = pod.metadata.name.clone().unwrap_or_default();
        let map = pod.metadata.annotations.clone().unwrap_or_default();
        let command = dump::restore_command(&map).ok_or_else(|| {
            format!(
                "pod {ns}/{name} has no {RESTORE_COMMAND} annotation, so the dump {} was not loaded; \
                 add the annotation, or load it by hand from the backup's snapshot {}",
                d.file,
                d.snapshot.as_deref().unwrap_or_default()
            )
        })??;
        let repo = open(d.namespace.clone())
            .await
            .map_err(|e| format!("the repository of namespace {} cannot be opened: {e}", d.namespace))?;
        let (bytes, output) = dump::feed_restore(&pods, &repo, &name, &d.container, &command, d).await?;
        Ok((name, bytes, output))
    }
    .await;
    let took = started.elapsed().as_secs_f64();
    match outcome {
        Ok((pod, bytes, output)) => {
            let mut line = format!(
                "dump {} ({bytes} bytes) fed to {RESTORE_COMMAND} of pod {pod}, container {} in {took:.1}s",
                d.file, d.container
            );
            if !output.is_empty() {
                line.push_str(&format!("; output: {output}"));
            }
            report.restored_dumps.restored += 1;
            report.log.push((object, "dump-restored", line));
        }
        Err(e) => {
            report.restored_dumps.failed += 1;
            let message = format!("dump {} not restored: {e}", d.file);
            report
                .log
                .push((object.clone(), "dump-failed", message.clone()));
            report.errors.push((object, message));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn init_hooks_go_in_front_of_the_pods_own_init_containers() {
        let mut pod = json!({
            "metadata": {"name": "db-0", "namespace": "shop", "annotations": {
                "init.hook.restore.velero.io/container-image": "alpine:3",
                "init.hook.restore.velero.io/container-name": "seed",
                "init.hook.restore.velero.io/command": "[\"/bin/ash\", \"-c\", \"date\"]"
            }},
            "spec": {"initContainers": [{"name": "own", "image": "busybox"}], "containers": [{"name": "db", "image": "postgres"}]}
        });
        let problems = add_init_containers(&mut pod, &HookFile::default());
        assert!(problems.is_empty());
        let names: Vec<&str> = pod["spec"]["initContainers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["seed", "own"]);
        assert_eq!(
            pod["spec"]["initContainers"][0]["command"],
            json!(["/bin/ash", "-c", "date"])
        );
    }
}
