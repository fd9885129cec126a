//! The real binary over a real TLS handshake: admission answers, health, metrics, certificate
//! rotation on disk, limits on bad input, graceful shutdown.

mod support;

use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::Value;
use support::*;

#[tokio::test]
async fn mutate_over_tls_annotates_the_mariadb_pod_and_counts_it() {
    let dir = tempfile::tempdir().unwrap();
    let certs = certs("ca-one");
    let (crt, key) = install(dir.path(), &certs);
    let hook = start(&crt, &key, "127.0.0.1:0", &["--standalone"]);
    let http = client(&certs.ca_pem);
    let base = format!("https://{}", hook.addr);

    assert_eq!(
        http.get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        http.get(format!("{base}/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let answer: Value = http
        .post(format!("{base}/mutate"))
        .header("content-type", "application/json")
        .body(review(mariadb_pod()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let response = &answer["response"];
    assert_eq!(response["allowed"], true);
    assert_eq!(response["uid"], "b2c7e0a4-1f7e-4a3b-9d1e-2f0c3a4b5c6d");
    assert_eq!(answer["apiVersion"], "admission.k8s.io/v1");
    let patch = base64::engine::general_purpose::STANDARD
        .decode(response["patch"].as_str().expect("a base64 patch"))
        .unwrap();
    let patch: Value = serde_json::from_slice(&patch).unwrap();
    let added: Vec<(&str, &str)> = patch
        .as_array()
        .unwrap()
        .iter()
        .map(|op| {
            (
                op["path"].as_str().unwrap(),
                op["value"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert!(
        added.contains(&(
            "/metadata/annotations/vbackup.io~1backup-volumes-excludes",
            "empty-dir"
        )),
        "{added:?}"
    );
    assert!(
        added.contains(&(
            "/metadata/annotations/vbackup.io~1backup-command-container",
            "mariadb"
        )),
        "{added:?}"
    );
    assert!(
        added.contains(&("/metadata/annotations/vbackup.io~1policy", "default")),
        "{added:?}"
    );

    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("vbackup_webhook_requests_total{result=\"patched\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("vbackup_webhook_patches_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("vbackup_webhook_request_duration_seconds_count 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn bad_bodies_get_a_400_and_oversized_ones_a_413_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let certs = certs("ca-one");
    let (crt, key) = install(dir.path(), &certs);
    let hook = start(&crt, &key, "127.0.0.1:0", &["--standalone"]);
    let http = client(&certs.ca_pem);
    let url = format!("https://{}/mutate", hook.addr);
    let not_json = http.post(&url).body("{not json").send().await.unwrap();
    assert_eq!(not_json.status(), 400);
    let error: Value = not_json.json().await.unwrap();
    assert!(
        error["error"].as_str().unwrap().contains("AdmissionReview"),
        "{error}"
    );
    let huge = vec![b' '; 3 * 1024 * 1024 + 1];
    let too_big = http.post(&url).body(huge).send().await.unwrap();
    assert_eq!(too_big.status(), 413);
    let ok = http
        .post(&url)
        .body(review(mariadb_pod()))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200, "still serving after bad input");
    let metrics = http
        .get(format!("https://{}/metrics", hook.addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("vbackup_webhook_requests_total{result=\"bad_request\"} 2"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_certificate_rotated_on_disk_is_presented_at_the_next_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let old = certs("ca-old");
    let (crt, key) = install(dir.path(), &old);
    let hook = start(&crt, &key, "127.0.0.1:0", &["--standalone"]);
    let url = format!("https://{}/healthz", hook.addr);
    assert!(client(&old.ca_pem).get(&url).send().await.is_ok());

    let new = certs("ca-new");
    assert!(
        client(&new.ca_pem).get(&url).send().await.is_err(),
        "the new CA must not verify the old certificate"
    );
    install(dir.path(), &new);
    let deadline = Instant::now() + Duration::from_secs(15);
    // A fresh client per try: a pooled connection would keep the old session.
    while client(&new.ca_pem).get(&url).send().await.is_err() {
        assert!(
            Instant::now() < deadline,
            "the new certificate was not served within 15 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        client(&old.ca_pem).get(&url).send().await.is_err(),
        "the old certificate is still served"
    );
    let metrics = client(&new.ca_pem)
        .get(format!("https://{}/metrics", hook.addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("vbackup_webhook_certificate_reloads_total 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn tls_1_2_clients_are_served_too() {
    let dir = tempfile::tempdir().unwrap();
    let certs = certs("ca-one");
    let (crt, key) = install(dir.path(), &certs);
    let hook = start(&crt, &key, "127.0.0.1:0", &["--standalone"]);
    let http = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(certs.ca_pem.as_bytes()).unwrap())
        .max_tls_version(reqwest::tls::Version::TLS_1_2)
        .build()
        .unwrap();
    let r = http
        .get(format!("https://{}/healthz", hook.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[test]
fn sigterm_stops_the_server_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let certs = certs("ca-one");
    let (crt, key) = install(dir.path(), &certs);
    let mut hook = start(&crt, &key, "127.0.0.1:0", &["--standalone"]);
    let pid = hook.child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = hook.child.try_wait().unwrap() {
            assert!(status.success(), "exit after SIGTERM: {status}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still running 10 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
