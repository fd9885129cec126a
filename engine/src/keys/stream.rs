//! Encryption of a backup's object archive and item log, so reading the bucket reveals no
//! Secret and a flipped byte is a clear "damaged" error.
//!
//! XChaCha20-Poly1305 in the STREAM construction (Hoang, Reyhanitabar, Rogaway, Vizár,
//! "Online Authenticated-Encryption and its Nonce-Reuse Misuse-Resistance", 2015): the
//! plaintext is cut into 64 KiB chunks, each sealed with the nonce
//! `19 zero bytes ‖ chunk counter (32-bit big-endian) ‖ last-chunk flag`, so chunks cannot be
//! reordered, dropped, repeated or cut off without failing authentication.
//!
//! Format version 1: `VBKE` `0x01` ‖ 32-byte random salt ‖ sealed chunks. The key of one
//! object is SHA-256(`vbackup object key v1` ‖ archive key ‖ salt): a fresh key per object
//! (so a fixed nonce prefix is safe). The object's name (its path in the location) is every
//! chunk's associated data, so an archive copied under another backup's name does not open.
//! The last chunk holds 0..=64 KiB; every other chunk exactly 64 KiB.
//!
//! The archive key is the location's own random key for archives, stored in the location
//! sealed with the location key (like each repository's password), so `rotate-key` re-seals
//! one small object instead of re-encrypting every backup.

use std::io::{self, Read};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};

use super::LocationKey;
use crate::{Error, Result};

/// A location's random key for object archives and item logs. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct ArchiveKey([u8; 32]);

impl std::fmt::Debug for ArchiveKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ArchiveKey(<redacted>)")
    }
}

impl ArchiveKey {
    /// A fresh random key.
    pub fn generate() -> Result<Self> {
        let mut key = [0u8; 32];
        super::fill_random(&mut key)?;
        Ok(ArchiveKey(key))
    }
}

/// First bytes of a sealed archive key.
const SEALED_KEY_MAGIC: &[u8; 5] = b"VBKA\x01";
const SEALED_KEY_AAD: &[u8] = b"vbackup archive key v1";
const SEALED_NONCE_LEN: usize = 24;

/// Seals `key` with the location key: `VBKA` `0x01` ‖ 24-byte random nonce ‖ ciphertext.
pub fn seal_archive_key(location: &LocationKey, key: &ArchiveKey) -> Result<Vec<u8>> {
    let mut nonce = [0u8; SEALED_NONCE_LEN];
    super::fill_random(&mut nonce)?;
    let payload = Payload {
        msg: &key.0,
        aad: SEALED_KEY_AAD,
    };
    let sealed = location
        .cipher()
        .encrypt(XNonce::from_slice(&nonce), payload)
        .map_err(|_| Error::Internal("sealing the archive key failed".into()))?;
    Ok([&SEALED_KEY_MAGIC[..], &nonce, &sealed].concat())
}

/// Opens a key sealed by [`seal_archive_key`]; `None` for another location key or altered
/// bytes.
pub fn unseal_archive_key(location: &LocationKey, sealed: &[u8]) -> Option<ArchiveKey> {
    let rest = sealed.strip_prefix(SEALED_KEY_MAGIC.as_slice())?;
    if rest.len() < SEALED_NONCE_LEN {
        return None;
    }
    let (nonce, ciphertext) = rest.split_at(SEALED_NONCE_LEN);
    let payload = Payload {
        msg: ciphertext,
        aad: SEALED_KEY_AAD,
    };
    let plain = location
        .cipher()
        .decrypt(XNonce::from_slice(nonce), payload)
        .ok()?;
    Some(ArchiveKey(plain.try_into().ok()?))
}

/// First bytes of an encrypted object: a magic and the format version.
pub const MAGIC: &[u8; 5] = b"VBKE\x01";
const SALT_LEN: usize = 32;
/// Plaintext bytes per chunk.
pub const CHUNK: usize = 64 * 1024;
const TAG_LEN: usize = 16;

fn object_cipher(key: &ArchiveKey, salt: &[u8]) -> XChaCha20Poly1305 {
    let mut hash = Sha256::new();
    hash.update(b"vbackup object key v1");
    hash.update(key.0);
    hash.update(salt);
    let derived: [u8; 32] = hash.finalize().into();
    XChaCha20Poly1305::new(&derived.into())
}

fn nonce(counter: u32, last: bool) -> XNonce {
    let mut nonce = [0u8; 24];
    nonce[19..23].copy_from_slice(&counter.to_be_bytes());
    nonce[23] = u8::from(last);
    *XNonce::from_slice(&nonce)
}

/// Encrypts one object as it is produced: feed it with [`Sealer::push`], end with
/// [`Sealer::finish`]; both return the bytes to store next.
pub struct Sealer {
    cipher: XChaCha20Poly1305,
    aad: Vec<u8>,
    counter: u32,
    pending: Vec<u8>,
    header: Option<Vec<u8>>,
}

impl Sealer {
    /// Starts the encryption of the object stored as `name`, with a fresh random salt.
    pub fn new(key: &ArchiveKey, name: &str) -> Result<Self> {
        let mut salt = [0u8; SALT_LEN];
        super::fill_random(&mut salt)?;
        let mut header = Vec::with_capacity(MAGIC.len() + SALT_LEN);
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&salt);
        Ok(Sealer {
            cipher: object_cipher(key, &salt),
            aad: name.as_bytes().to_vec(),
            counter: 0,
            pending: Vec::with_capacity(CHUNK),
            header: Some(header),
        })
    }

    /// Takes `data`; returns the sealed bytes that are ready (whole chunks, header first).
    pub fn push(&mut self, mut data: &[u8]) -> Result<Vec<u8>> {
        let mut out = self.header.take().unwrap_or_default();
        // A chunk is sealed only once more data follows it: the last chunk must carry the
        // last-chunk flag, and only `finish` knows which one that is.
        while !data.is_empty() {
            if self.pending.len() == CHUNK {
                let chunk = std::mem::take(&mut self.pending);
                self.seal_into(&chunk, false, &mut out)?;
                self.pending = chunk;
                self.pending.clear();
            }
            let take = (CHUNK - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        Ok(out)
    }

    /// Seals what is left as the last chunk; returns the final bytes.
    pub fn finish(mut self) -> Result<Vec<u8>> {
        let mut out = self.header.take().unwrap_or_default();
        let last = std::mem::take(&mut self.pending);
        self.seal_into(&last, true, &mut out)?;
        Ok(out)
    }

    fn seal_into(&mut self, chunk: &[u8], last: bool, out: &mut Vec<u8>) -> Result<()> {
        let sealed = self
            .cipher
            .encrypt(
                &nonce(self.counter, last),
                Payload {
                    msg: chunk,
                    aad: &self.aad,
                },
            )
            .map_err(|_| Error::Internal("encrypting the backup data failed".into()))?;
        self.counter = self.counter.checked_add(1).ok_or_else(|| {
            Error::Internal("an object of more than 256 TiB cannot be encrypted".into())
        })?;
        out.extend_from_slice(&sealed);
        Ok(())
    }
}

/// Encrypts a whole object held in memory.
pub fn seal_all(key: &ArchiveKey, name: &str, data: &[u8]) -> Result<Vec<u8>> {
    let mut sealer = Sealer::new(key, name)?;
    let mut out = sealer.push(data)?;
    out.extend(sealer.finish()?);
    Ok(out)
}

/// Reads an object written with or without encryption: an encrypted one (it starts with
/// [`MAGIC`]) is decrypted with `key`, any other is passed through as it is (backups made
/// before encryption).
pub fn open(
    mut reader: impl Read + Send + 'static,
    key: Option<&ArchiveKey>,
    name: &str,
) -> io::Result<Box<dyn Read + Send>> {
    let mut head = Vec::with_capacity(MAGIC.len());
    (&mut reader)
        .take(MAGIC.len() as u64)
        .read_to_end(&mut head)?;
    if head != MAGIC {
        return Ok(Box::new(io::Cursor::new(head).chain(reader)));
    }
    let key = key.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{name} is encrypted and the location's key is not available: import it with \
                 `kubectl vbackup location import-key`"
            ),
        )
    })?;
    let mut salt = [0u8; SALT_LEN];
    reader
        .read_exact(&mut salt)
        .map_err(|_| damaged(name, "its header is cut off"))?;
    Ok(Box::new(Opener {
        inner: reader,
        cipher: object_cipher(key, &salt),
        aad: name.as_bytes().to_vec(),
        name: name.to_string(),
        counter: 0,
        plain: Vec::new(),
        pos: 0,
        done: false,
    }))
}

fn damaged(name: &str, why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{name} is damaged or was altered ({why})"),
    )
}

/// The decrypting half: verifies each chunk before handing out any of its bytes.
struct Opener<R> {
    inner: R,
    cipher: XChaCha20Poly1305,
    aad: Vec<u8>,
    name: String,
    counter: u32,
    plain: Vec<u8>,
    pos: usize,
    done: bool,
}

impl<R: Read> Opener<R> {
    fn decrypt(&self, sealed: &[u8], last: bool) -> Option<Vec<u8>> {
        self.cipher
            .decrypt(
                &nonce(self.counter, last),
                Payload {
                    msg: sealed,
                    aad: &self.aad,
                },
            )
            .ok()
    }

    fn next_chunk(&mut self) -> io::Result<()> {
        let mut sealed = Vec::with_capacity(CHUNK + TAG_LEN);
        (&mut self.inner)
            .take((CHUNK + TAG_LEN) as u64)
            .read_to_end(&mut sealed)?;
        let chunk_no = self.counter;
        let failed = || {
            let why = match chunk_no {
                // Nothing has opened yet: as likely another location key as altered data.
                0 => "its first chunk failed authentication: another location key wrote it, or \
                      it was altered"
                    .to_string(),
                n => format!("chunk {n} failed authentication"),
            };
            damaged(&self.name, &why)
        };
        if sealed.len() < TAG_LEN {
            return Err(damaged(&self.name, "it is cut off"));
        }
        let plain = if sealed.len() == CHUNK + TAG_LEN {
            match self.decrypt(&sealed, false) {
                Some(plain) => plain,
                None => {
                    let plain = self.decrypt(&sealed, true).ok_or_else(failed)?;
                    self.end_of_object()?;
                    plain
                }
            }
        } else {
            let plain = self.decrypt(&sealed, true).ok_or_else(failed)?;
            self.done = true;
            plain
        };
        self.counter = self.counter.wrapping_add(1);
        self.plain = plain;
        self.pos = 0;
        Ok(())
    }

    /// After a full-size last chunk, nothing may follow.
    fn end_of_object(&mut self) -> io::Result<()> {
        let mut extra = [0u8; 1];
        if self.inner.read(&mut extra)? != 0 {
            return Err(damaged(&self.name, "data follows its last chunk"));
        }
        self.done = true;
        Ok(())
    }
}

impl<R: Read> Read for Opener<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.plain.len() {
            if self.done {
                return Ok(0);
            }
            self.next_chunk()?;
        }
        let n = buf.len().min(self.plain.len() - self.pos);
        buf[..n].copy_from_slice(&self.plain[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(sealed: &[u8], key: &ArchiveKey, name: &str) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        open(io::Cursor::new(sealed.to_vec()), Some(key), name)?.read_to_end(&mut out)?;
        Ok(out)
    }

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn round_trips_at_every_chunk_boundary() {
        let key = ArchiveKey::generate().unwrap();
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 3 * CHUNK + 17] {
            let plain = data(len);
            // Fed in odd pieces, as a stream would.
            let mut sealer = Sealer::new(&key, "backups/b/x").unwrap();
            let mut sealed = Vec::new();
            for piece in plain.chunks(7_777) {
                sealed.extend(sealer.push(piece).unwrap());
            }
            sealed.extend(sealer.finish().unwrap());
            assert_eq!(
                read_all(&sealed, &key, "backups/b/x").unwrap(),
                plain,
                "{len}"
            );
            let chunks = len.div_ceil(CHUNK).max(1);
            assert_eq!(
                sealed.len(),
                MAGIC.len() + SALT_LEN + len + TAG_LEN * chunks
            );
        }
    }

    #[test]
    fn flipped_cut_or_moved_data_is_damaged() {
        let key = ArchiveKey::generate().unwrap();
        let plain = data(2 * CHUNK + 100);
        let sealed = seal_all(&key, "backups/b/x", &plain).unwrap();
        let damaged = |bytes: &[u8], name: &str| {
            let err = read_all(bytes, &key, name).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData);
            assert!(err.to_string().contains("damaged"), "{err}");
        };
        for at in [
            MAGIC.len() + 3,
            MAGIC.len() + SALT_LEN + 5,
            sealed.len() - 1,
        ] {
            let mut flipped = sealed.clone();
            flipped[at] ^= 0x20;
            damaged(&flipped, "backups/b/x");
        }
        // Cut after a whole chunk: the last-chunk flag is missing.
        damaged(
            &sealed[..MAGIC.len() + SALT_LEN + CHUNK + TAG_LEN],
            "backups/b/x",
        );
        damaged(&sealed[..sealed.len() - 1], "backups/b/x");
        damaged(&sealed, "backups/other/x");
        let other = ArchiveKey::generate().unwrap();
        assert!(read_all(&sealed, &other, "backups/b/x").is_err());
    }

    #[test]
    fn the_archive_key_opens_only_with_its_location_key() {
        let location = LocationKey::generate().unwrap();
        let key = ArchiveKey::generate().unwrap();
        let sealed = seal_archive_key(&location, &key).unwrap();
        assert_eq!(unseal_archive_key(&location, &sealed), Some(key));
        let other = LocationKey::generate().unwrap();
        assert_eq!(unseal_archive_key(&other, &sealed), None);
        let mut flipped = sealed.clone();
        flipped[10] ^= 1;
        assert_eq!(unseal_archive_key(&location, &flipped), None);
    }

    #[test]
    fn data_written_before_encryption_reads_as_it_is() {
        let key = ArchiveKey::generate().unwrap();
        let gzip = b"\x1f\x8b\x08plain old archive".to_vec();
        assert_eq!(read_all(&gzip, &key, "x").unwrap(), gzip);
        let mut out = Vec::new();
        open(io::Cursor::new(b"abc".to_vec()), None, "x")
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, b"abc");
        let sealed = seal_all(&key, "x", b"secret").unwrap();
        let err = open(io::Cursor::new(sealed), None, "x").err().unwrap();
        assert!(err.to_string().contains("import-key"), "{err}");
    }
}
