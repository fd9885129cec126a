//! A location that goes away in the middle of a backup: the backup stops with one clear
//! error that says what happened to it, and no archive is passed off as complete.

mod objects;

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, ObjectMeta, PostParams};
use objects::Env;
use vbackup_engine::resources::{BackupRequest, run_backup};
// Noise does not compress, so the archive is larger than one upload part.
use vbackup_test_support::noise;

/// moto on a free port of 127.0.0.1, owned by this test so it can be killed.
fn start_moto() -> (Child, String) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("python3")
        .args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start moto");
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "moto did not start listening on port {port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (child, format!("http://127.0.0.1:{port}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn location_unreachable_mid_backup_fails_with_a_clear_error() {
    let env = Env::start().await;
    let (moto, endpoint) = start_moto();
    let moto = Mutex::new(Some(moto));
    let s3 = vbackup_test_support::S3Server {
        endpoint: endpoint.clone(),
        access_key_id: "test".into(),
        secret_access_key: "test".into(),
    };
    let bucket = s3.bucket("mid").await.unwrap();
    env.create_s3_location_at("flaky", &endpoint, &bucket, "test", "test")
        .await;

    let namespaces: Api<Namespace> = Api::all(env.client.clone());
    let ns: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "bulk"}})).unwrap();
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(env.client.clone(), "bulk");
    for i in 0..48u64 {
        let cm = ConfigMap {
            metadata: ObjectMeta {
                name: Some(format!("blob-{i:02}")),
                ..Default::default()
            },
            binary_data: Some([("data".to_string(), ByteString(noise(i, 300 * 1024)))].into()),
            ..Default::default()
        };
        cms.create(&PostParams::default(), &cm).await.unwrap();
    }

    let store = env.store("flaky").await;
    let mut request = BackupRequest::new("mid");
    request.namespaces.include = vec!["bulk".into()];
    // The first 8 MiB part is on its way by the 30th object; then the location goes away.
    let kill_at_30 = |p: &vbackup_engine::resources::Progress| {
        if p.items == 30
            && let Some(mut child) = moto.lock().unwrap().take()
        {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    };
    let err = run_backup(&env.client, &store, &request, &kill_at_30)
        .await
        .expect_err("a backup to a location that went away succeeded");
    let message = err.to_string();
    assert!(message.starts_with("backup mid Failed"), "{message}");
    assert!(
        message.contains("cannot reach") || message.contains("upload"),
        "{message}"
    );
    assert!(message.contains("listed as Incomplete"), "{message}");
    assert!(
        moto.lock().unwrap().is_none(),
        "the backup ended before the location went away"
    );
}
