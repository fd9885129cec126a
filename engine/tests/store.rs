//! The object-store contract, run against both implementations: a directory and a real S3
//! server (moto, with authentication on).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};
use vbackup_engine::Error;
use vbackup_engine::store::fs::FsBackend;
use vbackup_engine::store::location::{AccessMode, S3Spec};
use vbackup_engine::store::s3::{S3Backend, S3Credentials};
use vbackup_engine::store::{ObjectBackend, Store};
use vbackup_test_support::S3Server;

const MIB: u64 = 1024 * 1024;

/// A deterministic byte stream of a given length that never sits in memory whole.
struct Pattern {
    remaining: u64,
    state: u64,
    polled: Arc<std::sync::atomic::AtomicBool>,
}

impl Pattern {
    fn new(len: u64, seed: u64) -> Self {
        Pattern {
            remaining: len,
            state: seed | 1,
            polled: Default::default(),
        }
    }
}

impl AsyncRead for Pattern {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        self.polled.store(true, std::sync::atomic::Ordering::SeqCst);
        let n = (buf.remaining() as u64).min(self.remaining).min(64 * 1024) as usize;
        let mut chunk = vec![0u8; n];
        for byte in &mut chunk {
            // xorshift: cheap, deterministic, incompressible enough to defeat shortcuts.
            self.state ^= self.state << 13;
            self.state ^= self.state >> 7;
            self.state ^= self.state << 17;
            *byte = self.state as u8;
        }
        self.remaining -= n as u64;
        buf.put_slice(&chunk);
        Poll::Ready(Ok(()))
    }
}

async fn assert_same_stream(
    mut a: impl AsyncRead + Unpin,
    mut b: impl AsyncRead + Unpin,
    len: u64,
) {
    let (mut buf_a, mut buf_b) = (vec![0u8; 256 * 1024], vec![0u8; 256 * 1024]);
    let mut seen = 0u64;
    loop {
        let n = read_full(&mut a, &mut buf_a).await;
        let m = read_full(&mut b, &mut buf_b).await;
        assert_eq!(n, m, "streams differ in length after {seen} bytes");
        assert!(
            buf_a[..n] == buf_b[..m],
            "streams differ within bytes {seen}..{}",
            seen + n as u64
        );
        seen += n as u64;
        if n == 0 {
            break;
        }
    }
    assert_eq!(seen, len);
}

async fn read_full(r: &mut (impl AsyncRead + Unpin), buf: &mut [u8]) -> usize {
    let mut filled = 0;
    while filled < buf.len() {
        let n = r.read(&mut buf[filled..]).await.unwrap();
        if n == 0 {
            break;
        }
        filled += n;
    }
    filled
}

async fn s3_backend(bucket: &str, secret: Option<&str>) -> S3Backend {
    let server = S3Server::shared().unwrap();
    let spec = S3Spec {
        bucket: bucket.into(),
        prefix: Some("cluster-a/".into()),
        region: None,
        endpoint: Some(server.endpoint.clone()),
        force_path_style: true,
        credentials_secret: None,
    };
    let creds = S3Credentials {
        access_key_id: server.access_key_id.clone(),
        secret_access_key: secret.unwrap_or(&server.secret_access_key).into(),
        session_token: None,
    };
    S3Backend::new(&spec, creds).unwrap()
}

async fn backends() -> (tempfile::TempDir, Vec<Arc<dyn ObjectBackend>>) {
    let dir = tempfile::tempdir().unwrap();
    let bucket = S3Server::shared().unwrap().bucket("store").await.unwrap();
    let backends: Vec<Arc<dyn ObjectBackend>> = vec![
        Arc::new(FsBackend::new(dir.path().join("location"))),
        Arc::new(s3_backend(&bucket, None).await),
    ];
    (dir, backends)
}

#[tokio::test]
async fn objects_of_every_size_round_trip_through_both_stores() {
    let (_dir, backends) = backends().await;
    for backend in backends {
        let store = Store::new("test", backend.clone(), AccessMode::ReadWrite);
        for (i, len) in [0, 1, 5 * MIB + 1, 200 * MIB].into_iter().enumerate() {
            let key = format!("backups/b/object-{len}");
            let written = store
                .put_stream(&key, &mut Pattern::new(len, i as u64))
                .await
                .unwrap();
            assert_eq!(written, len, "{}", store.url());
            assert_eq!(
                store.head(&key).await.unwrap(),
                Some(len),
                "{}",
                store.url()
            );
            let reader = store.get(&key).await.unwrap();
            assert_same_stream(reader, Pattern::new(len, i as u64), len).await;
        }
        let keys: Vec<_> = store
            .list("backups/")
            .await
            .unwrap()
            .into_iter()
            .map(|o| (o.key, o.size))
            .collect();
        assert_eq!(
            keys,
            vec![
                ("backups/b/object-0".into(), 0),
                ("backups/b/object-1".into(), 1),
                ("backups/b/object-209715200".into(), 200 * MIB),
                ("backups/b/object-5242881".into(), 5 * MIB + 1),
            ],
            "{}",
            store.url()
        );
    }
}

#[tokio::test]
async fn small_objects_ranges_listing_and_deletion_behave_the_same_on_both_stores() {
    let (_dir, backends) = backends().await;
    for backend in backends {
        let store = Store::new("test", backend, AccessMode::ReadWrite);
        let url = store.url();
        store
            .put(
                "backups/x/vbackup-backup.json",
                Bytes::from_static(b"{\"phase\":\"Completed\"}"),
            )
            .await
            .unwrap();
        store
            .put("repos/ns/data/ab/abcdef", Bytes::from_static(b"0123456789"))
            .await
            .unwrap();
        assert_eq!(
            &store
                .get_bytes("backups/x/vbackup-backup.json")
                .await
                .unwrap()[..],
            b"{\"phase\":\"Completed\"}"
        );
        assert_eq!(
            &store
                .get_range("repos/ns/data/ab/abcdef", 3, 4)
                .await
                .unwrap()[..],
            b"3456",
            "{url}"
        );
        assert!(
            store
                .get_range("repos/ns/data/ab/abcdef", 8, 4)
                .await
                .is_err(),
            "{url}: short range must fail"
        );
        // A reused buffer holds exactly the last range read, never a previous one's tail.
        let mut buf = b"left over from an earlier, longer read".to_vec();
        store
            .get_range_into("repos/ns/data/ab/abcdef", 6, 3, &mut buf)
            .await
            .unwrap();
        assert_eq!(&buf[..], b"678", "{url}");
        store
            .get_range_into("repos/ns/data/ab/abcdef", 0, 10, &mut buf)
            .await
            .unwrap();
        assert_eq!(&buf[..], b"0123456789", "{url}");
        assert!(
            store
                .get_range_into("repos/ns/data/ab/abcdef", 9, 2, &mut buf)
                .await
                .is_err(),
            "{url}: short range must fail"
        );
        assert!(
            matches!(
                store
                    .get_range_into("repos/ns/data/ab/missing", 0, 1, &mut buf)
                    .await,
                Err(Error::NotFound { .. })
            ),
            "{url}"
        );
        assert_eq!(store.head("backups/missing").await.unwrap(), None, "{url}");
        assert!(
            matches!(
                store.get("backups/missing").await,
                Err(Error::NotFound { .. })
            ),
            "{url}"
        );
        assert_eq!(store.list("repos/").await.unwrap().len(), 1, "{url}");
        assert_eq!(store.delete_prefix("backups/x/").await.unwrap(), 1, "{url}");
        assert!(store.list("backups/").await.unwrap().is_empty(), "{url}");
        store.delete("backups/never-existed").await.unwrap();
        let report = store.check().await.unwrap();
        assert!(report.probe_round_trip, "{url}");
        assert_eq!(
            store
                .head(vbackup_engine::store::layout::PROBE)
                .await
                .unwrap(),
            None,
            "{url}: probe left behind"
        );
    }
}

#[tokio::test]
async fn read_only_locations_refuse_writes_before_reading_a_byte() {
    let (_dir, backends) = backends().await;
    for backend in backends {
        let writer = Store::new("rw", backend.clone(), AccessMode::ReadWrite);
        writer
            .put(
                "backups/keep/vbackup-backup.json",
                Bytes::from_static(b"{}"),
            )
            .await
            .unwrap();
        let reader = Store::new("archive", backend, AccessMode::ReadOnly);
        let mut body = Pattern::new(10, 1);
        let polled = body.polled.clone();
        let err = reader
            .put_stream("backups/new/resources.tar.gz", &mut body)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::ReadOnly { .. }), "{err}");
        assert!(err.to_string().contains("archive is ReadOnly"), "{err}");
        assert!(
            !polled.load(std::sync::atomic::Ordering::SeqCst),
            "the body was read"
        );
        assert!(matches!(
            reader.put("x", Bytes::new()).await,
            Err(Error::ReadOnly { .. })
        ));
        assert!(matches!(
            reader.delete("backups/keep/vbackup-backup.json").await,
            Err(Error::ReadOnly { .. })
        ));
        assert!(matches!(
            reader.delete_prefix("backups/").await,
            Err(Error::ReadOnly { .. })
        ));
        assert_eq!(
            writer.head("backups/new/resources.tar.gz").await.unwrap(),
            None
        );
        assert_eq!(
            reader
                .get_bytes("backups/keep/vbackup-backup.json")
                .await
                .unwrap()
                .as_ref(),
            b"{}"
        );
        assert!(
            !reader.check().await.unwrap().probe_round_trip,
            "a ReadOnly check must not write"
        );
    }
}

#[tokio::test]
async fn a_missing_bucket_is_named_in_the_error() {
    let store = Store::new(
        "gone",
        Arc::new(s3_backend("vbackup-no-such-bucket", None).await),
        AccessMode::ReadWrite,
    );
    let err = store.check().await.unwrap_err();
    assert!(matches!(err, Error::NoSuchBucket { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("bucket vbackup-no-such-bucket does not exist"),
        "{err}"
    );
    let err = store
        .put("backups/a/x", Bytes::from_static(b"x"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NoSuchBucket { .. }), "{err:?}");
}

#[tokio::test]
async fn wrong_credentials_are_refused_with_a_hint_and_without_the_secret() {
    let bucket = S3Server::shared().unwrap().bucket("creds").await.unwrap();
    let store = Store::new(
        "bad",
        Arc::new(s3_backend(&bucket, Some("not-the-secret")).await),
        AccessMode::ReadWrite,
    );
    for err in [
        store.check().await.unwrap_err(),
        store.put("k", Bytes::from_static(b"v")).await.unwrap_err(),
    ] {
        assert!(matches!(err, Error::AccessDenied { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains("check the access key") && !text.contains("not-the-secret"),
            "{text}"
        );
    }
}

#[tokio::test]
async fn an_unreachable_endpoint_says_so() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let spec = S3Spec {
        bucket: "vbackup-anything".into(),
        prefix: None,
        region: Some("gra".into()),
        endpoint: Some(format!("http://127.0.0.1:{port}")),
        force_path_style: true,
        credentials_secret: None,
    };
    let creds = S3Credentials {
        access_key_id: "a".into(),
        secret_access_key: "b".into(),
        session_token: None,
    };
    let store = Store::new(
        "down",
        Arc::new(S3Backend::new(&spec, creds).unwrap()),
        AccessMode::ReadWrite,
    );
    let err = store.check().await.unwrap_err();
    assert!(matches!(err, Error::Unreachable { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains(&format!("cannot reach http://127.0.0.1:{port}")),
        "{err}"
    );
}
