//! Reads S3 credentials from a location's Secret.
//!
//! Two layouts are accepted: vbackup's own (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! optional `AWS_SESSION_TOKEN`) and Velero's (`cloud`: an AWS credentials file), so a
//! Velero user can point vbackup at the Secret they already have.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;

use super::s3::S3Credentials;
use crate::{Error, Result};

const ACCESS_KEY: &str = "AWS_ACCESS_KEY_ID";
const SECRET_KEY: &str = "AWS_SECRET_ACCESS_KEY";
const SESSION_TOKEN: &str = "AWS_SESSION_TOKEN";
const VELERO_CLOUD: &str = "cloud";

/// Extracts an access key pair from a Secret's data; `secret` names it in errors.
pub fn from_secret_data(
    secret: &str,
    data: &BTreeMap<String, ByteString>,
) -> Result<S3Credentials> {
    let text = |key: &str| -> Result<Option<String>> {
        data.get(key)
            .map(|v| {
                String::from_utf8(v.0.clone())
                    .map(|s| s.trim().to_string())
                    .map_err(|_| {
                        Error::BadInput(format!("key {key} of Secret {secret} is not UTF-8 text"))
                    })
            })
            .transpose()
    };
    if let (Some(access_key_id), Some(secret_access_key)) = (text(ACCESS_KEY)?, text(SECRET_KEY)?) {
        return Ok(S3Credentials {
            access_key_id,
            secret_access_key,
            session_token: text(SESSION_TOKEN)?,
        });
    }
    if let Some(file) = text(VELERO_CLOUD)? {
        return parse_credentials_file(secret, &file);
    }
    Err(Error::BadInput(format!(
        "Secret {secret} has neither {ACCESS_KEY} + {SECRET_KEY} nor a Velero `{VELERO_CLOUD}` key: \
         create it with `kubectl create secret generic {secret} -n vbackup-system \
         --from-literal={ACCESS_KEY}=… --from-literal={SECRET_KEY}=…`"
    )))
}

/// Parses the `[default]` profile of an AWS credentials file (Velero's `cloud` key).
fn parse_credentials_file(secret: &str, file: &str) -> Result<S3Credentials> {
    let mut profile = None::<&str>;
    let mut values = BTreeMap::new();
    for line in file.lines().map(str::trim) {
        if line.is_empty() || line.starts_with(['#', ';']) {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            profile = Some(name.trim());
        } else if let Some((key, value)) = line.split_once('=')
            && profile.is_none_or(|p| p == "default")
        {
            values.insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
        }
    }
    match (
        values.remove("aws_access_key_id"),
        values.remove("aws_secret_access_key"),
    ) {
        (Some(access_key_id), Some(secret_access_key)) => Ok(S3Credentials {
            access_key_id,
            secret_access_key,
            session_token: values.remove("aws_session_token"),
        }),
        _ => Err(Error::BadInput(format!(
            "the `{VELERO_CLOUD}` key of Secret {secret} has no aws_access_key_id and \
             aws_secret_access_key in its [default] profile"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, ByteString> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
            .collect()
    }

    #[test]
    fn reads_vbackup_layout() {
        let creds =
            from_secret_data("s", &data(&[(ACCESS_KEY, "AK\n"), (SECRET_KEY, "SK")])).unwrap();
        assert_eq!(
            (
                creds.access_key_id.as_str(),
                creds.secret_access_key.as_str()
            ),
            ("AK", "SK")
        );
        assert_eq!(creds.session_token, None);
    }

    #[test]
    fn reads_velero_cloud_file_default_profile_only() {
        let file = "[other]\naws_access_key_id=WRONG\n[default]\naws_access_key_id = AK\naws_secret_access_key=SK\n";
        let creds = from_secret_data("s", &data(&[("cloud", file)])).unwrap();
        assert_eq!(
            (
                creds.access_key_id.as_str(),
                creds.secret_access_key.as_str()
            ),
            ("AK", "SK")
        );
    }

    #[test]
    fn missing_keys_say_how_to_create_the_secret() {
        let err = from_secret_data("creds", &data(&[("password", "x")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("kubectl create secret generic creds"), "{err}");
        assert!(!err.contains("\"x\""));
    }
}
