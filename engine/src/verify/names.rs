//! Scratch namespace names: unique, recognisable, and valid DNS labels.

use crate::Result;
use crate::volumes::mover_pod::random_suffix;

/// What every scratch namespace's name starts with.
pub const PREFIX: &str = "vbackup-verify-";
/// Random characters at the end of a scratch name: two verifies of one backup never meet.
const RANDOM: usize = 5;
/// Longest DNS label.
const MAX_LABEL: usize = 63;

/// `vbackup-verify-<namespace, shortened>-<random>`, at most 63 characters.
pub fn scratch_namespace(namespace: &str) -> Result<String> {
    Ok(scratch_name(namespace, &random_suffix(RANDOM)?))
}

fn scratch_name(namespace: &str, random: &str) -> String {
    let room = MAX_LABEL - PREFIX.len() - 1 - random.len();
    let short: String = namespace.chars().take(room).collect();
    // A namespace cut after a dash would leave two dashes in a row: legal, but ugly.
    format!("{PREFIX}{}-{random}", short.trim_end_matches('-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scratch_names_are_dns_labels_even_for_the_longest_namespaces() {
        let long = "a".repeat(63);
        let name = scratch_namespace(&long).unwrap();
        assert_eq!(name.len(), 63, "{name}");
        assert!(name.starts_with("vbackup-verify-aaaa"), "{name}");
        assert!(
            name.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "{name}"
        );
        assert_eq!(scratch_name("shop", "x2b4c"), "vbackup-verify-shop-x2b4c");
        let cut_at_dash = format!("{}-b", "a".repeat(41));
        assert_eq!(
            scratch_name(&cut_at_dash, "zzzzz"),
            format!("vbackup-verify-{}-zzzzz", "a".repeat(41))
        );
    }

    #[test]
    fn two_scratch_names_of_one_namespace_differ() {
        assert_ne!(
            scratch_namespace("shop").unwrap(),
            scratch_namespace("shop").unwrap()
        );
    }
}
