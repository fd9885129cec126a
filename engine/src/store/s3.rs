//! A location in an S3-compatible bucket, through aws-sdk-s3.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::{
    Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::location::S3Spec;
use super::s3_retries::RetryLog;
use super::{ObjectBackend, ObjectMeta, ObjectReader};
use crate::{Error, Result};

/// Size of each part of a multipart upload (S3's minimum is 5 MiB). Memory use of an upload
/// is one part, whatever the object's size.
const PART_SIZE: usize = 8 * 1024 * 1024;

/// Parts grow every this many parts, so S3's 10,000-part cap is reached only past ~400 GiB.
const PARTS_PER_SIZE_STEP: i32 = 1000;

const DEFAULT_REGION: &str = "us-east-1";

/// Most bytes reserved up front for a ranged read (the length comes from the repository's
/// index, which is read from the bucket).
const MAX_RANGE_PREALLOCATION: u64 = 64 << 20;

/// An access key pair read from a location's credentials Secret.
#[derive(Clone)]
pub struct S3Credentials {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// Session token, for temporary credentials.
    pub session_token: Option<String>,
}

impl fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret, not even in debug output.
        f.debug_struct("S3Credentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// Object store in an S3 bucket, below an optional prefix.
#[derive(Clone, Debug)]
pub struct S3Backend {
    client: Client,
    bucket: String,
    /// Empty, or ends with `/`.
    prefix: String,
    endpoint: String,
    /// Set once the store answered a conditional write with "not implemented".
    unconditional: Arc<AtomicBool>,
}

impl S3Backend {
    /// Connects to the bucket described by `spec` with `credentials`; nothing is sent yet.
    pub fn new(spec: &S3Spec, credentials: S3Credentials) -> Result<Self> {
        validate_bucket_name(&spec.bucket)?;
        let endpoint = match &spec.endpoint {
            Some(url) => Some(validate_endpoint(url)?),
            None => None,
        };
        let region = spec
            .region
            .clone()
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| DEFAULT_REGION.into());
        let shown_endpoint = endpoint
            .clone()
            .unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
        let mut config = aws_sdk_s3::Config::builder()
            .behavior_version_latest()
            .interceptor(RetryLog {
                endpoint: shown_endpoint.clone(),
            })
            .region(Region::new(region.clone()))
            .credentials_provider(Credentials::new(
                credentials.access_key_id,
                credentials.secret_access_key,
                credentials.session_token,
                None,
                "vbackup-location-secret",
            ))
            .force_path_style(spec.force_path_style)
            // Many S3-compatible services (older MinIO, some OVHcloud and Scaleway regions)
            // reject the SDK's default streaming checksums; send them only when required.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        if let Some(url) = &endpoint {
            config = config.endpoint_url(url.clone());
        }
        let prefix = spec
            .prefix
            .as_deref()
            .map(|p| p.trim_matches('/'))
            .filter(|p| !p.is_empty())
            .map(|p| format!("{p}/"))
            .unwrap_or_default();
        Ok(S3Backend {
            client: Client::from_conf(config.build()),
            bucket: spec.bucket.clone(),
            prefix,
            endpoint: shown_endpoint,
            unconditional: Arc::new(AtomicBool::new(false)),
        })
    }

    fn full_key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Turns an SDK failure into an error that says what to fix.
    fn error<E>(&self, op: &'static str, key: &str, err: SdkError<E, HttpResponse>) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let status = match &err {
            SdkError::ServiceError(_) => err.raw_response().map(|r| r.status().as_u16()),
            _ => None,
        };
        let code = err.code().map(str::to_owned);
        let detail = DisplayErrorContext(&err).to_string();
        match (&err, code.as_deref(), status) {
            (SdkError::DispatchFailure(_) | SdkError::TimeoutError(_), _, _) => {
                Error::Unreachable {
                    endpoint: self.endpoint.clone(),
                    detail,
                }
            }
            (_, Some("NoSuchBucket"), _) => self.no_such_bucket(),
            (_, Some("NoSuchKey" | "NotFound"), _) | (_, _, Some(404)) if op != "check bucket" => {
                Error::NotFound {
                    location: self.url(),
                    key: key.to_string(),
                }
            }
            (_, _, Some(404)) => self.no_such_bucket(),
            (
                _,
                Some("AccessDenied" | "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "Forbidden"),
                _,
            )
            | (_, _, Some(401 | 403)) => Error::AccessDenied {
                bucket: self.bucket.clone(),
                endpoint: self.endpoint.clone(),
                detail: code.unwrap_or_else(|| "HTTP 403".into()),
            },
            _ => Error::Store {
                op,
                location: self.url(),
                key: key.to_string(),
                detail,
            },
        }
    }

    fn no_such_bucket(&self) -> Error {
        Error::NoSuchBucket {
            bucket: self.bucket.clone(),
            endpoint: self.endpoint.clone(),
        }
    }

    async fn upload_parts(
        &self,
        key: &str,
        upload_id: &str,
        first: Bytes,
        body: &mut (dyn AsyncRead + Send + Unpin),
    ) -> Result<(u64, Vec<CompletedPart>)> {
        let full_key = self.full_key(key);
        let mut parts = Vec::new();
        let mut total = 0u64;
        let mut chunk = first;
        let mut number = 1i32;
        while !chunk.is_empty() {
            total += chunk.len() as u64;
            let uploaded = self
                .client
                .upload_part()
                .bucket(&self.bucket)
                .key(&full_key)
                .upload_id(upload_id)
                .part_number(number)
                .body(ByteStream::from(chunk))
                .send()
                .await
                .map_err(|e| self.error("upload part of", key, e))?;
            parts.push(
                CompletedPart::builder()
                    .set_e_tag(uploaded.e_tag().map(str::to_owned))
                    .part_number(number)
                    .build(),
            );
            number += 1;
            let size = PART_SIZE * (1 + (number / PARTS_PER_SIZE_STEP) as usize);
            chunk = read_up_to(body, size)
                .await
                .map_err(|e| self.read_error(key, e))?;
        }
        Ok((total, parts))
    }

    fn read_error(&self, key: &str, e: std::io::Error) -> Error {
        Error::Store {
            op: "read the data to upload to",
            location: self.url(),
            key: key.to_string(),
            detail: e.to_string(),
        }
    }
}

/// Reads until `limit` bytes or the end of the stream, whichever comes first.
async fn read_up_to(
    body: &mut (dyn AsyncRead + Send + Unpin),
    limit: usize,
) -> std::io::Result<Bytes> {
    let mut buf = BytesMut::with_capacity(limit);
    while buf.len() < limit {
        let mut limited = (&mut *body).take((limit - buf.len()) as u64);
        if limited.read_buf(&mut buf).await? == 0 {
            break;
        }
    }
    Ok(buf.freeze())
}

fn validate_bucket_name(bucket: &str) -> Result<()> {
    let valid = (3..=63).contains(&bucket.len())
        && bucket
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && !bucket.starts_with(['-', '.'])
        && !bucket.ends_with(['-', '.']);
    if valid {
        Ok(())
    } else {
        Err(Error::BadInput(format!(
            "bucket name {bucket:?} is not valid: 3 to 63 lowercase letters, digits, '-' or '.'"
        )))
    }
}

/// Checks an endpoint URL is `http(s)://host[:port][/]` and returns it without a trailing slash.
pub fn validate_endpoint(url: &str) -> Result<String> {
    let invalid = |why: &str| {
        Error::BadInput(format!(
            "endpoint {url:?} is not a valid URL ({why}): use e.g. https://s3.gra.io.cloud.ovh.net"
        ))
    };
    let parsed = url::Url::parse(url).map_err(|e| invalid(&e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(invalid("the scheme must be http or https"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(invalid("it has no host"));
    }
    if parsed.path() != "/" || parsed.query().is_some() {
        return Err(invalid(
            "it must not have a path; put the bucket in --bucket and folders in --prefix",
        ));
    }
    Ok(url.trim_end_matches('/').to_string())
}

#[async_trait]
impl ObjectBackend for S3Backend {
    async fn put(&self, key: &str, body: Bytes) -> Result<()> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| self.error("write", key, e))?;
        Ok(())
    }

    async fn put_if_absent(&self, key: &str, body: Bytes) -> Result<bool> {
        let sent = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .if_none_match("*")
            .body(ByteStream::from(body.clone()))
            .send()
            .await;
        let Err(err) = sent else {
            return Ok(true);
        };
        let status = err.raw_response().map(|r| r.status().as_u16());
        match (err.code(), status) {
            // Taken already (412), or another conditional write of the key in flight (409).
            (Some("PreconditionFailed" | "ConditionalRequestConflict"), _)
            | (_, Some(412 | 409)) => Ok(false),
            // A store without conditional writes: check, write, and let the caller read back.
            (Some("NotImplemented"), _) | (_, Some(501)) => {
                if !self.unconditional.swap(true, Ordering::Relaxed) {
                    tracing::warn!(endpoint = %self.endpoint, "the object store has no conditional writes (If-None-Match); keys are created by check-then-write and read back after a pause");
                }
                if self.head(key).await?.is_some() {
                    return Ok(false);
                }
                self.put(key, body).await?;
                Ok(true)
            }
            _ => Err(self.error("write", key, err)),
        }
    }

    fn writes_conditionally(&self) -> bool {
        !self.unconditional.load(Ordering::Relaxed)
    }

    async fn put_stream(
        &self,
        key: &str,
        body: &mut (dyn AsyncRead + Send + Unpin),
    ) -> Result<u64> {
        let first = read_up_to(body, PART_SIZE)
            .await
            .map_err(|e| self.read_error(key, e))?;
        if first.len() < PART_SIZE {
            let len = first.len() as u64;
            self.put(key, first).await?;
            return Ok(len);
        }
        let full_key = self.full_key(key);
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(&full_key)
            .send()
            .await
            .map_err(|e| self.error("start upload of", key, e))?;
        let upload_id = created.upload_id().unwrap_or_default().to_string();
        let uploaded = self.upload_parts(key, &upload_id, first, body).await;
        let completed = match uploaded {
            Ok((total, parts)) => self
                .client
                .complete_multipart_upload()
                .bucket(&self.bucket)
                .key(&full_key)
                .upload_id(&upload_id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts))
                        .build(),
                )
                .send()
                .await
                .map(|_| total)
                .map_err(|e| self.error("complete upload of", key, e)),
            Err(e) => Err(e),
        };
        if completed.is_err() {
            // Abandoned parts cost storage until aborted; the original error matters more.
            let _ = self
                .client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(&full_key)
                .upload_id(&upload_id)
                .send()
                .await;
        }
        completed
    }

    async fn get(&self, key: &str) -> Result<ObjectReader> {
        let object = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .send()
            .await
            .map_err(|e| self.error("read", key, e))?;
        Ok(Box::new(object.body.into_async_read()))
    }

    async fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Bytes> {
        let mut data = Vec::new();
        self.get_range_into(key, offset, len, &mut data).await?;
        Ok(Bytes::from(data))
    }

    async fn get_range_into(
        &self,
        key: &str,
        offset: u64,
        len: u64,
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        buf.clear();
        if len == 0 {
            return Ok(());
        }
        let object = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .range(format!("bytes={offset}-{}", offset + len - 1))
            .send()
            .await
            .map_err(|e| self.error("read range of", key, e))?;
        // Copied into one buffer as the body arrives: collecting the chunks and then joining
        // them held every range twice (restores read up to 16 MiB ranges on 8 workers).
        let mut body = object.body;
        buf.reserve(len.min(MAX_RANGE_PREALLOCATION) as usize);
        let mut received = 0u64;
        while let Some(chunk) = body.try_next().await.map_err(|e| Error::Store {
            op: "read range of",
            location: self.url(),
            key: key.to_string(),
            detail: e.to_string(),
        })? {
            received += chunk.len() as u64;
            if received <= len {
                buf.extend_from_slice(&chunk);
            }
        }
        if received != len {
            return Err(Error::Store {
                op: "read range of",
                location: self.url(),
                key: key.to_string(),
                detail: format!("asked for {len} bytes at {offset}, got {received}"),
            });
        }
        Ok(())
    }

    async fn head(&self, key: &str) -> Result<Option<u64>> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .send()
            .await
        {
            Ok(head) => Ok(Some(head.content_length().unwrap_or(0).max(0) as u64)),
            Err(e) => match self.error("stat", key, e) {
                Error::NotFound { .. } => Ok(None),
                other => Err(other),
            },
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(self.full_key(prefix))
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.error("list", prefix, e))?;
            for object in page.contents() {
                let Some(key) = object.key().and_then(|k| k.strip_prefix(&self.prefix)) else {
                    continue;
                };
                out.push(ObjectMeta {
                    key: key.to_string(),
                    size: object.size().unwrap_or(0).max(0) as u64,
                });
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(self.full_key(key))
            .send()
            .await
            .map_err(|e| self.error("delete", key, e))?;
        Ok(())
    }

    async fn check_reachable(&self) -> Result<()> {
        self.client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map_err(|e| self.error("check bucket", "", e))?;
        Ok(())
    }

    fn url(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_must_be_a_bare_http_url() {
        assert_eq!(
            validate_endpoint("https://s3.gra.io.cloud.ovh.net/").unwrap(),
            "https://s3.gra.io.cloud.ovh.net"
        );
        assert!(validate_endpoint("http://127.0.0.1:9000").is_ok());
        for bad in [
            "s3.example.com",
            "ftp://x",
            "https://host/bucket",
            "http://",
            "not a url",
        ] {
            let err = validate_endpoint(bad).unwrap_err().to_string();
            assert!(err.contains("not a valid URL"), "{bad}: {err}");
        }
    }

    #[test]
    fn bucket_names_follow_s3_rules() {
        assert!(validate_bucket_name("my-backups.2026").is_ok());
        for bad in [
            "",
            "ab",
            "Upper",
            "-x-y",
            "with_underscore",
            &"a".repeat(64),
        ] {
            assert!(validate_bucket_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn debug_output_never_shows_the_secret() {
        let creds = S3Credentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "very-secret".into(),
            session_token: Some("token-secret".into()),
        };
        let shown = format!("{creds:?}");
        assert!(
            shown.contains("AKIDEXAMPLE")
                && !shown.contains("secret")
                && !shown.contains("token-secret"),
            "{shown}"
        );
    }
}
