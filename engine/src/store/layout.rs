//! Where every object lives inside a location (bucket + prefix, or a directory).
//!
//! This is the only module that spells object paths; everything else asks it.

/// The metadata file of a backup, written last: a backup without it is incomplete.
pub fn backup_metadata(backup: &str) -> String {
    format!("{}vbackup-backup.json", backup_dir(backup))
}

/// The streamed archive of a backup's API objects.
pub fn backup_resources(backup: &str) -> String {
    format!("{}resources.tar.gz", backup_dir(backup))
}

/// The per-item decision log of a backup.
pub fn backup_log(backup: &str) -> String {
    format!("{}log.jsonl.gz", backup_dir(backup))
}

/// The folder of one backup (with a trailing slash), for listing and deletion.
pub fn backup_dir(backup: &str) -> String {
    format!("{BACKUPS}{backup}/")
}

/// The folder that holds every backup.
pub const BACKUPS: &str = "backups/";

/// The metadata file of a restore.
pub fn restore_metadata(restore: &str) -> String {
    format!("{}vbackup-restore.json", restore_dir(restore))
}

/// The per-item decision log of a restore.
pub fn restore_log(restore: &str) -> String {
    format!("{}log.jsonl.gz", restore_dir(restore))
}

/// The folder of one restore (with a trailing slash).
pub fn restore_dir(restore: &str) -> String {
    format!("{RESTORES}{restore}/")
}

/// A Velero backup's own record (its `Backup` object) in a Velero bucket.
pub fn velero_backup_metadata(backup: &str) -> String {
    format!("{}velero-backup.json", backup_dir(backup))
}

/// A Velero backup's file named `<backup><suffix>` (`.tar.gz`, `-logs.gz`, `-results.gz`,
/// `-podvolumebackups.json.gz`…), in its folder.
pub fn velero_backup_file(backup: &str, suffix: &str) -> String {
    format!("{}{backup}{suffix}", backup_dir(backup))
}

/// The folder that holds every restore record.
pub const RESTORES: &str = "restores/";

/// The folder that holds every namespace's volume-data repository.
pub const REPOS: &str = "repos/";

/// Where Velero keeps its restic repositories (`restic/<namespace>/`) in its bucket.
pub const VELERO_REPOS: &str = "restic/";

/// The restic-format repository of one namespace (with a trailing slash).
pub fn repo_dir(namespace: &str) -> String {
    format!("{REPOS}{namespace}/")
}

/// The namespace repository's own random password, sealed with the location key.
pub fn repo_sealed_key(namespace: &str) -> String {
    format!("{}vbackup-key.sealed", repo_dir(namespace))
}

/// The `config` file of a namespace's restic-format repository.
pub fn repo_config(namespace: &str) -> String {
    format!("{}config", repo_dir(namespace))
}

/// The folder of one kind of restic repository file (`keys`, `snapshots`, `index`, `data`),
/// with a trailing slash.
pub fn repo_kind_dir(namespace: &str, kind: &str) -> String {
    format!("{}{kind}/", repo_dir(namespace))
}

/// One restic repository file, named by its hex id. Pack files (`data`) are fanned out into
/// sub-folders named after the id's first two hex digits, as the restic format requires.
pub fn repo_file(namespace: &str, kind: &str, id: &str) -> String {
    match (kind, id.get(..2)) {
        ("data", Some(fan)) => format!("{}{fan}/{id}", repo_kind_dir(namespace, kind)),
        _ => format!("{}{id}", repo_kind_dir(namespace, kind)),
    }
}

/// The probe object `location check` writes, reads back and deletes.
pub const PROBE: &str = "vbackup-probe";

/// Extracts the names of the direct sub-folders of `dir` from a listing of keys under it.
pub fn child_names<'a>(dir: &str, keys: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut names: Vec<String> = keys
        .into_iter()
        .filter_map(|k| k.strip_prefix(dir))
        .filter_map(|rest| rest.split_once('/').map(|(name, _)| name.to_string()))
        .collect();
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_files_live_under_the_backup_folder() {
        assert_eq!(
            backup_metadata("nightly"),
            "backups/nightly/vbackup-backup.json"
        );
        assert_eq!(
            backup_resources("nightly"),
            "backups/nightly/resources.tar.gz"
        );
        assert_eq!(backup_log("nightly"), "backups/nightly/log.jsonl.gz");
        assert_eq!(restore_metadata("r1"), "restores/r1/vbackup-restore.json");
        assert_eq!(repo_sealed_key("prod"), "repos/prod/vbackup-key.sealed");
        assert_eq!(repo_config("prod"), "repos/prod/config");
        assert_eq!(repo_file("prod", "keys", "ab12"), "repos/prod/keys/ab12");
        assert_eq!(repo_file("prod", "data", "ab12"), "repos/prod/data/ab/ab12");
    }

    #[test]
    fn child_names_lists_each_folder_once_in_order() {
        let keys = [
            "backups/b/vbackup-backup.json",
            "backups/a/resources.tar.gz",
            "backups/a/vbackup-backup.json",
            "backups/stray-file",
        ];
        assert_eq!(child_names(BACKUPS, keys), vec!["a", "b"]);
    }
}
