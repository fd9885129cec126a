//! Snapshots copied in from another restic-format repository (a Velero bucket's): data and
//! tree blobs copied as they are stored (content-addressed, so a blob the repository holds
//! already is never uploaded again), and the copied tree re-rooted under [`SNAPSHOT_ROOT`]
//! like vbackup's own snapshots by one new tree blob whose `data` directory is the copied
//! root.

use aes256ctr_poly1305aes::Aes256CtrPoly1305Aes;
use aes256ctr_poly1305aes::aead::AeadInPlace;
use aes256ctr_poly1305aes::aead::generic_array::GenericArray;
use rustic_core::repofile::{MasterKey, Metadata, Node, NodeType, SnapshotFile, Tree};
use rustic_core::{FileType, Id, TreeId, WriteBackend};
use sha2::{Digest, Sha256};

use super::backup::snapshot_template;
use super::restore_packs::aead_key;
use super::session::State;
use super::{SNAPSHOT_ROOT, VolumeRepo, validate_tag_value};
use crate::{Error, Result};

/// Marks a copy whose re-rooted snapshot is not written yet; removed once it is.
const PARTIAL_TAG: &str = "vbackup-import-partial";

/// A snapshot copied into a repository by [`VolumeRepo::import_snapshot`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopiedSnapshot {
    /// The snapshot's id in this repository.
    pub snapshot_id: String,
    /// False when an earlier import had copied it already (nothing was written).
    pub copied: bool,
    /// Files in the snapshot (0 when its writer kept no summary: restic before 0.17).
    pub files: u64,
    /// Bytes of file contents in the snapshot (0 without a summary).
    pub bytes: u64,
}

impl VolumeRepo {
    /// Copies snapshot `snapshot` of `source` (another tool's restic repository, its volume
    /// at the snapshot's root) into this repository as volume `volume` of backup `backup`,
    /// re-rooted under [`SNAPSHOT_ROOT`] and tagged as vbackup's own snapshots are, plus
    /// `origin=ID` with the source snapshot's id.
    ///
    /// Idempotent: when this repository holds that copy for that backup already, nothing is
    /// written; an earlier copy that stopped half-way is finished (its blobs are not copied
    /// again).
    pub async fn import_snapshot(
        &self,
        source: &VolumeRepo,
        snapshot: &str,
        volume: &str,
        backup: &str,
        origin: &str,
    ) -> Result<CopiedSnapshot> {
        self.store.ensure_writable()?;
        validate_tag_value("volume", volume)?;
        validate_tag_value("backup", backup)?;
        validate_tag_value("origin", origin)?;
        let (source, snapshot) = (source.clone(), snapshot.to_string());
        let (volume, backup, origin) = (volume.to_string(), backup.to_string(), origin.to_string());
        let listing = self.index_listing().await?;
        let this = self.clone();
        self.run("import snapshot", None, None, move |state, _| {
            let src = source.open_indexed_blocking()?;
            let snap = src
                .get_snapshot_from_str(&snapshot, |_| true)
                .map_err(|e| source.rustic_error("read snapshot", &e))?;
            let marker = format!("{origin}={}", snap.id.to_hex().as_str());
            let backup_tag = format!("backup={backup}");
            let ours =
                |sn: &SnapshotFile| sn.tags.contains(&marker) && sn.tags.contains(&backup_tag);
            let (repo, listing) = state.full(listing)?;
            let done =
                repo.get_matching_snapshots(|sn| ours(sn) && !sn.tags.contains(PARTIAL_TAG))?;
            let summary = snap.summary.clone().unwrap_or_default();
            let result = |snapshot_id: String, copied| CopiedSnapshot {
                snapshot_id,
                copied,
                files: summary.total_files_processed,
                bytes: summary.total_bytes_processed,
            };
            if let Some(existing) = done.first() {
                // A run that stopped after saving the snapshot may have left its step copy.
                let steps = step_copies(&repo.get_matching_snapshots(|sn| ours(sn))?);
                if !steps.is_empty() {
                    repo.delete_snapshots(&steps)?;
                }
                let found = result(existing.id.to_hex().to_string(), false);
                return Ok((found, State::Full(repo, listing)));
            }

            // The copy is saved by rustic with the source's tree; it is only a step.
            let mut step = snap.clone();
            step.tags = Default::default();
            step.tags.add(PARTIAL_TAG.into());
            step.tags.add(marker.clone());
            step.tags.add(backup_tag.clone());
            src.copy(&repo, [&step])?;

            let root = rooted_tree(&snap)?;
            if repo.get_index_entry(&root.id).is_err() {
                write_tree(this.pack_reader().as_ref(), &repo.key(), &root)?;
            }
            let mut copied = snapshot_template(this.namespace(), &volume, &backup)?;
            copied.tags.add(marker.clone());
            copied.tree = root.id;
            copied.paths = Default::default();
            copied.paths.add(SNAPSHOT_ROOT.into());
            copied.time = snap.time.clone();
            copied.summary = snap.summary.clone();
            repo.save_snapshots(vec![copied])?;
            let saved = repo.get_matching_snapshots(|sn| ours(sn))?;
            repo.delete_snapshots(&step_copies(&saved))?;
            let id = saved
                .iter()
                .find(|sn| !sn.tags.contains(PARTIAL_TAG))
                .map(|sn| sn.id.to_hex().to_string())
                .ok_or_else(|| Error::Internal("the copied snapshot was not saved".into()))?;
            Ok((result(id, true), State::Open(repo.drop_index())))
        })
        .await
    }
}

/// The ids of the step copies (tagged [`PARTIAL_TAG`]) among `snaps`.
fn step_copies(snaps: &[SnapshotFile]) -> Vec<rustic_core::repofile::SnapshotId> {
    snaps
        .iter()
        .filter(|sn| sn.tags.contains(PARTIAL_TAG))
        .map(|sn| sn.id)
        .collect()
}

/// A serialised tree blob and its id.
struct TreeBlob {
    id: TreeId,
    digest: [u8; 32],
    json: Vec<u8>,
}

/// The tree `{ data/ → the snapshot's root }`: the copied snapshot seen as vbackup's. Its
/// directory node is dated with the snapshot, so the same snapshot always gives the same
/// tree.
fn rooted_tree(snap: &SnapshotFile) -> Result<TreeBlob> {
    let meta = Metadata {
        mtime: Some(snap.time.timestamp()),
        ..Metadata::default()
    };
    let name = SNAPSHOT_ROOT.trim_start_matches('/');
    let mut node = Node::new_node(name.as_ref(), NodeType::Dir, meta);
    node.subtree = Some(snap.tree);
    let tree = Tree { nodes: vec![node] };
    let (json, _) = tree
        .serialize()
        .map_err(|e| Error::Internal(format!("cannot encode a tree: {e}")))?;
    let digest: [u8; 32] = Sha256::digest(&json).into();
    let id: Id = hex(&digest)
        .parse()
        .map_err(|e| Error::Internal(format!("tree id: {e}")))?;
    Ok(TreeBlob {
        id: id.into(),
        digest,
        json,
    })
}

/// Stores one tree blob as the restic format lays it out: a pack file holding the
/// encrypted blob, its encrypted header and the header's length, and an index file naming
/// the pack, both encrypted with the repository's master key. (rustic_core writes tree
/// blobs only from the trees it builds itself.)
fn write_tree(backend: &dyn WriteBackend, key: &MasterKey, tree: &TreeBlob) -> Result<()> {
    let cipher = Aes256CtrPoly1305Aes::new(&aead_key(key));
    let blob = seal(&cipher, &tree.json)?;
    let blob_len =
        u32::try_from(blob.len()).map_err(|_| Error::Internal("a tree blob over 4 GiB".into()))?;
    // Header entry of an uncompressed tree blob: type 1, length, id.
    let mut header = vec![1u8];
    header.extend_from_slice(&blob_len.to_le_bytes());
    header.extend_from_slice(&tree.digest);
    let header = seal(&cipher, &header)?;
    let mut pack = blob;
    pack.extend_from_slice(&header);
    pack.extend_from_slice(&(header.len() as u32).to_le_bytes());
    let pack_id = hex(&Sha256::digest(&pack));
    let index = serde_json::json!({"packs": [{
        "id": pack_id,
        "blobs": [{"id": hex(&tree.digest), "type": "tree", "offset": 0, "length": blob_len}],
    }]});
    let index = seal(
        &cipher,
        &serde_json::to_vec(&index).map_err(|e| Error::Internal(e.to_string()))?,
    )?;
    let index_id = hex(&Sha256::digest(&index));
    let id = |hex: &str| -> Result<Id> {
        hex.parse()
            .map_err(|e| Error::Internal(format!("file id: {e}")))
    };
    // The pack first: an index never names a pack that is not there.
    backend.write_bytes(FileType::Pack, &id(&pack_id)?, false, pack.into())?;
    backend.write_bytes(FileType::Index, &id(&index_id)?, false, index.into())?;
    Ok(())
}

/// IV ‖ AES-256-CTR ciphertext ‖ Poly1305-AES tag, as restic encrypts every file and blob.
fn seal(cipher: &Aes256CtrPoly1305Aes, plain: &[u8]) -> Result<Vec<u8>> {
    let mut nonce = [0u8; 16];
    getrandom::fill(&mut nonce)
        .map_err(|e| Error::Internal(format!("no randomness for an IV: {e}")))?;
    let mut out = Vec::with_capacity(plain.len() + 32);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(plain);
    let tag = cipher
        .encrypt_in_place_detached(GenericArray::from_slice(&nonce), &[], &mut out[16..])
        .map_err(|e| Error::Internal(format!("encrypting a tree failed: {e}")))?;
    out.extend_from_slice(&tag);
    Ok(out)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
