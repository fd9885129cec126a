//! What a restore did, object by object: counts, warnings, item errors and the item log,
//! filled from each object's outcome. No I/O.

use super::apply::Applied;
use crate::backups::SkippedSummary;
use crate::backups::itemlog::ItemLog;
use crate::backups::record::{Tally, add_skipped};
use crate::resources::types::ObjectRef;

/// A restore's outcome so far.
#[derive(Default)]
pub(super) struct Report {
    pub(super) tally: Tally,
    pub(super) skipped: Vec<SkippedSummary>,
    pub(super) log: ItemLog,
    /// Objects that existed already and were left as they are.
    pub(super) unchanged: u64,
    /// Objects that existed, differed and were put back as backed up.
    pub(super) updated: u64,
}

impl Report {
    /// Records what applying `r` did; returns its new name when it was created or updated.
    pub(super) fn applied(
        &mut self,
        r: &ObjectRef,
        result: std::result::Result<Applied, String>,
    ) -> Option<String> {
        match result {
            Ok(Applied::Created(name)) => {
                self.tally.count(&r.resource);
                self.log.record(r, "created", None);
                Some(name)
            }
            Ok(Applied::Unchecked) => {
                self.tally.count(&r.resource);
                self.log.record(
                    r,
                    "created",
                    Some("dry run: would be created once its namespace or type exists; not checked by the server"),
                );
                None
            }
            Ok(Applied::Unchanged) => {
                self.unchanged += 1;
                self.log
                    .record(r, "unchanged", Some("exists already, as in the backup"));
                None
            }
            Ok(Applied::Differs(shown)) => {
                self.unchanged += 1;
                self.tally.warn(format!(
                    "{shown} exists and differs from the backup; left as it is (use \
                     --existing-resource-policy=update to put it back as backed up)"
                ));
                self.log
                    .record(r, "unchanged", Some("exists and differs from the backup"));
                None
            }
            Ok(Applied::Updated(name)) => {
                self.updated += 1;
                self.tally.count(&r.resource);
                self.log.record(
                    r,
                    "updated",
                    Some("existed and differed; updated to the backed-up state"),
                );
                Some(name)
            }
            Err(e) => {
                self.fail(r, e);
                None
            }
        }
    }

    /// Records `r` as not restored: an item error, and the restore goes on.
    pub(super) fn fail(&mut self, r: &ObjectRef, message: impl Into<String>) {
        let message = message.into();
        tracing::warn!(object = %r, error = %message, "not restored; recorded as an item error");
        self.log.record(r, "failed", Some(&message));
        self.tally.error(r, message);
    }

    /// Records `r` as left out by a per-kind rule.
    pub(super) fn skip(&mut self, r: &ObjectRef, reason: &str) {
        add_skipped(&mut self.skipped, &r.resource, reason);
        self.log.record(r, "skipped", Some(reason));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_outcome_counts_where_the_record_shows_it() {
        let cm = ObjectRef::namespaced("configmaps", "shop", "settings");
        let mut report = Report::default();
        assert_eq!(
            report.applied(&cm, Ok(Applied::Created("settings".into()))),
            Some("settings".into())
        );
        assert_eq!(report.applied(&cm, Ok(Applied::Unchanged)), None);
        assert_eq!(
            report.applied(&cm, Ok(Applied::Differs("configmaps/shop/settings".into()))),
            None
        );
        assert_eq!(
            report.applied(&cm, Ok(Applied::Updated("settings".into()))),
            Some("settings".into())
        );
        assert_eq!(report.applied(&cm, Err("denied by quota".into())), None);
        report.skip(&cm, "published by the cluster");

        assert_eq!(report.tally.counts.get("configmaps"), Some(&2));
        assert_eq!((report.unchanged, report.updated), (2, 1));
        assert_eq!(report.tally.error_count, 1);
        assert_eq!(report.tally.errors[0].message, "denied by quota");
        assert_eq!(report.tally.warnings.len(), 1);
        assert!(
            report.tally.warnings[0].contains("configmaps/shop/settings exists and differs"),
            "{:?}",
            report.tally.warnings
        );
        assert_eq!(report.skipped.len(), 1);
        assert_eq!(report.skipped[0].count, 1);
    }
}
