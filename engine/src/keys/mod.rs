//! Location keys, and the sealing of each repository's own password with them.
//!
//! A location has one 32-byte random key (kept in a Secret, printed once). Every namespace
//! repository has its own random password, stored next to the repository sealed with that key
//! (XChaCha20-Poly1305, random nonce, the namespace bound as associated data), so a sealed
//! password copied to another namespace's folder does not open.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};

use crate::{Error, Result};

pub mod stream;

/// Prefix of a location key's text form; the `1` is the format version.
const KEY_PREFIX: &str = "vbk1_";
/// Bytes of checksum appended to the key in its text form (catches typos and truncation).
const KEY_CHECKSUM_LEN: usize = 4;
/// Characters after the prefix: base64 of 36 bytes.
const KEY_TEXT_LEN: usize = 48;
/// First bytes of a sealed password object: a magic and a format version.
const SEALED_MAGIC: &[u8; 5] = b"VBKS\x01";
const NONCE_LEN: usize = 24;
/// Random bytes in a repository password (base64url-encoded into its text).
const PASSWORD_BYTES: usize = 32;

/// A location's key: 32 random bytes that seal every repository password in the location.
///
/// Its text form (`vbk1_…`, see [`LocationKey::to_text`]) carries a checksum, so a mistyped or
/// truncated key is refused by [`LocationKey::parse`] instead of failing later as a wrong key.
/// `Debug` never shows the key.
#[derive(Clone, PartialEq, Eq)]
pub struct LocationKey([u8; 32]);

impl fmt::Debug for LocationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LocationKey(<redacted>)")
    }
}

impl LocationKey {
    /// A fresh random key from the operating system's generator.
    pub fn generate() -> Result<Self> {
        let mut key = [0u8; 32];
        fill_random(&mut key)?;
        Ok(LocationKey(key))
    }

    /// The raw bytes, for storing the key in a Secret. Never log them.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The printable form: `vbk1_` + base64url(key ‖ first 4 bytes of SHA-256(key)).
    pub fn to_text(&self) -> String {
        let mut buf = Vec::with_capacity(32 + KEY_CHECKSUM_LEN);
        buf.extend_from_slice(&self.0);
        buf.extend_from_slice(&checksum(&self.0));
        format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(buf))
    }

    /// Reads the text form; surrounding whitespace and line breaks inside it are ignored.
    /// Any other deviation (prefix, length, characters, checksum) is a clear error.
    pub fn parse(text: &str) -> Result<Self> {
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        let invalid = |why: &str| {
            Error::BadInput(format!(
                "this is not a vbackup location key ({why}): a key looks like `vbk1_` followed \
                 by 48 characters, exactly as `kubectl vbackup location create` printed it"
            ))
        };
        let body = compact
            .strip_prefix(KEY_PREFIX)
            .ok_or_else(|| invalid("it does not start with `vbk1_`"))?;
        if body.len() != KEY_TEXT_LEN {
            return Err(invalid(&format!(
                "it has the wrong length, {} characters after `vbk1_` instead of {KEY_TEXT_LEN}; \
                 was it truncated?",
                body.len()
            )));
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| invalid("it contains characters outside A-Z a-z 0-9 - _"))?;
        let (key, sum) = bytes.split_at(32);
        let mut raw = [0u8; 32];
        raw.copy_from_slice(key);
        if checksum(&raw) != sum {
            return Err(invalid("its checksum does not match; check for a typo"));
        }
        Ok(LocationKey(raw))
    }

    pub(crate) fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&self.0.into())
    }
}

/// A repository's own password: what `restic`/`rustic` need to read the repository.
///
/// `Debug` never shows it; [`RepoPassword::reveal`] is the one explicit way to get the text.
#[derive(Clone, PartialEq, Eq)]
pub struct RepoPassword(String);

impl fmt::Debug for RepoPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RepoPassword(<redacted>)")
    }
}

impl RepoPassword {
    /// A fresh random password (32 random bytes, base64url text).
    pub fn generate() -> Result<Self> {
        let mut bytes = [0u8; PASSWORD_BYTES];
        fill_random(&mut bytes)?;
        Ok(RepoPassword(URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// A password handed over in text (a mover's job).
    pub fn from_text(text: String) -> Self {
        RepoPassword(text)
    }

    /// The password text, for `kubectl vbackup repo password NS` and for opening the repository.
    pub fn reveal(&self) -> &str {
        &self.0
    }
}

/// What a sealed object holds: the repository password and, once the repository exists, its
/// master key (restic's key material, as rustic serialises it).
///
/// Keeping the master key lets vbackup open the repository without scrypt, whose parameters
/// rustic_core fixes at 128 MiB of memory — more than a whole backup needs otherwise. The
/// password alone keeps the repository readable by `restic` and `rustic`.
#[derive(Clone, PartialEq, Eq)]
pub struct RepoSecrets {
    /// The repository password.
    pub password: RepoPassword,
    /// The repository's master key as JSON, when known.
    pub master_key: Option<String>,
}

impl fmt::Debug for RepoSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RepoSecrets(<redacted>)")
    }
}

/// The sealed plaintext (JSON, so later versions can add fields).
#[derive(serde::Serialize, serde::Deserialize)]
struct SealedPayload {
    password: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    master_key: Option<String>,
}

/// Seals `secrets` for `namespace` with `key`.
///
/// Format (version 1): `VBKS` `0x01` ‖ 24-byte random nonce ‖ XChaCha20-Poly1305 ciphertext
/// of a JSON object `{"password": …, "master_key": …}`, with associated data binding the
/// namespace.
pub fn seal(key: &LocationKey, namespace: &str, secrets: &RepoSecrets) -> Result<Vec<u8>> {
    let mut nonce = [0u8; NONCE_LEN];
    fill_random(&mut nonce)?;
    let aad = associated_data(namespace);
    let plain = serde_json::to_vec(&SealedPayload {
        password: secrets.password.0.clone(),
        master_key: secrets.master_key.clone(),
    })
    .map_err(|e| Error::Internal(format!("encoding the repository secrets failed: {e}")))?;
    let ciphertext = key
        .cipher()
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: &plain,
                aad: &aad,
            },
        )
        .map_err(|_| Error::Internal("sealing the repository password failed".into()))?;
    let mut out = Vec::with_capacity(SEALED_MAGIC.len() + NONCE_LEN + ciphertext.len());
    out.extend_from_slice(SEALED_MAGIC);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ciphertext);
    Ok(out)
}

/// Why a sealed password could not be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnsealError {
    /// Not a sealed password of a format this version knows.
    Format,
    /// Authentication failed: another key, another namespace, or altered bytes.
    WrongKey,
}

/// Opens secrets sealed by [`seal`] for the same `namespace`.
pub fn unseal(
    key: &LocationKey,
    namespace: &str,
    sealed: &[u8],
) -> Result<RepoSecrets, UnsealError> {
    let rest = sealed
        .strip_prefix(SEALED_MAGIC.as_slice())
        .ok_or(UnsealError::Format)?;
    if rest.len() < NONCE_LEN + 16 {
        return Err(UnsealError::Format);
    }
    let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
    let aad = associated_data(namespace);
    let plain = key
        .cipher()
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad: &aad,
            },
        )
        .map_err(|_| UnsealError::WrongKey)?;
    let payload: SealedPayload = serde_json::from_slice(&plain).map_err(|_| UnsealError::Format)?;
    Ok(RepoSecrets {
        password: RepoPassword(payload.password),
        master_key: payload.master_key,
    })
}

fn associated_data(namespace: &str) -> Vec<u8> {
    format!("vbackup repository password v1; namespace={namespace}").into_bytes()
}

fn checksum(key: &[u8; 32]) -> [u8; KEY_CHECKSUM_LEN] {
    let digest = Sha256::digest(key);
    let mut out = [0u8; KEY_CHECKSUM_LEN];
    out.copy_from_slice(&digest[..KEY_CHECKSUM_LEN]);
    out
}

fn fill_random(buf: &mut [u8]) -> Result<()> {
    getrandom::fill(buf).map_err(|e| {
        Error::Internal(format!(
            "the operating system's random generator failed ({e}); cannot create keys"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_text_round_trips_and_tolerates_line_breaks() {
        let key = LocationKey::generate().unwrap();
        let text = key.to_text();
        assert!(text.starts_with("vbk1_"));
        assert_eq!(text.len(), 5 + 48);
        assert_eq!(LocationKey::parse(&text).unwrap(), key);
        let wrapped = format!("  {}\n{}\n", &text[..20], &text[20..]);
        assert_eq!(LocationKey::parse(&wrapped).unwrap(), key);
    }

    #[test]
    fn mistyped_keys_are_refused_with_the_reason() {
        let text = LocationKey::generate().unwrap().to_text();
        let mut typo: Vec<char> = text.chars().collect();
        typo[10] = if typo[10] == 'A' { 'B' } else { 'A' };
        let typo: String = typo.into_iter().collect();
        let err = LocationKey::parse(&typo).unwrap_err().to_string();
        assert!(err.contains("checksum"), "{err}");
        let err = LocationKey::parse(&text[..30]).unwrap_err().to_string();
        assert!(err.contains("length"), "{err}");
        // Only position 20: replacing that character everywhere could hit the prefix.
        let err = LocationKey::parse(&format!("{}!{}", &text[..20], &text[21..]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("characters outside"), "{err}");
        let err = LocationKey::parse("hunter2").unwrap_err().to_string();
        assert!(err.contains("vbk1_"), "{err}");
    }

    #[test]
    fn debug_output_never_contains_secrets() {
        let key = LocationKey::generate().unwrap();
        let password = RepoPassword::generate().unwrap();
        assert_eq!(format!("{key:?}"), "LocationKey(<redacted>)");
        assert!(!format!("{password:?}").contains(password.reveal()));
        let secrets = secrets();
        assert_eq!(format!("{secrets:?}"), "RepoSecrets(<redacted>)");
    }

    #[test]
    fn sealed_password_opens_only_with_its_key_and_namespace() {
        let key = LocationKey::generate().unwrap();
        let password = secrets();
        let sealed = seal(&key, "prod", &password).unwrap();
        assert_eq!(unseal(&key, "prod", &sealed).unwrap(), password);

        let other = LocationKey::generate().unwrap();
        assert_eq!(unseal(&other, "prod", &sealed), Err(UnsealError::WrongKey));
        assert_eq!(unseal(&key, "staging", &sealed), Err(UnsealError::WrongKey));

        let mut flipped = sealed.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert_eq!(unseal(&key, "prod", &flipped), Err(UnsealError::WrongKey));
        assert_eq!(
            unseal(&key, "prod", b"not sealed"),
            Err(UnsealError::Format)
        );
    }

    fn secrets() -> RepoSecrets {
        RepoSecrets {
            password: RepoPassword::generate().unwrap(),
            master_key: Some(r#"{"mac":{"k":"x","r":"y"},"encrypt":"z"}"#.into()),
        }
    }

    #[test]
    fn each_seal_uses_a_fresh_nonce() {
        let key = LocationKey::generate().unwrap();
        let password = secrets();
        assert_ne!(
            seal(&key, "prod", &password).unwrap(),
            seal(&key, "prod", &password).unwrap()
        );
    }
}
