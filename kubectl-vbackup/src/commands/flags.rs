//! Flags several commands share: which objects a backup or restore takes, and durations.

use std::time::Duration;

use clap::Args;
use vbackup_engine::resources::filter::{NamespaceFilter, ResourceFilter, split_list};

/// Which objects a backup or restore takes, with Velero's names and meaning.
#[derive(Debug, Args)]
pub struct FilterFlags {
    /// Namespaces to take (comma-separated, wildcards allowed; default: all, or the
    /// namespace given with -n); a restore names them as they are in the backup.
    #[arg(long, value_name = "NS[,NS…]")]
    pub include_namespaces: Vec<String>,
    /// Namespaces to leave out.
    #[arg(long, value_name = "NS[,NS…]")]
    pub exclude_namespaces: Vec<String>,
    /// Resource types to take: resource, resource.group, kind or short name (default: all).
    #[arg(long, value_name = "RESOURCE[,…]")]
    pub include_resources: Vec<String>,
    /// Resource types to leave out (e.g. CustomResourceDefinition,CertificateRequest,Order).
    #[arg(long, value_name = "RESOURCE[,…]")]
    pub exclude_resources: Vec<String>,
    /// Only objects matching this label selector (e.g. app=nextcloud).
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,
}

impl FilterFlags {
    /// The namespace filter; `-n NAMESPACE` (the global flag) stands for
    /// `--include-namespaces NAMESPACE`, as with Velero.
    pub fn namespaces(&self, namespace: Option<&str>) -> anyhow::Result<NamespaceFilter> {
        let include = split_list(&self.include_namespaces);
        let include = match namespace {
            Some(_) if !include.is_empty() => {
                anyhow::bail!("-n and --include-namespaces both name namespaces: use one of them")
            }
            Some(ns) => vec![ns.to_string()],
            None => include,
        };
        Ok(NamespaceFilter {
            include,
            exclude: split_list(&self.exclude_namespaces),
        })
    }

    /// The resource-type filter.
    pub fn resources(&self) -> ResourceFilter {
        ResourceFilter {
            include: split_list(&self.include_resources),
            exclude: split_list(&self.exclude_resources),
        }
    }

    /// The label selector (empty: everything).
    pub fn selector(&self) -> String {
        self.selector.clone().unwrap_or_default()
    }
}

/// The hooks of `--hooks-file PATH` (Velero's `spec.hooks`), if given.
pub fn read_hooks_file(
    path: Option<&std::path::Path>,
) -> anyhow::Result<Option<vbackup_engine::hooks::HookFile>> {
    let Some(path) = path else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read --hooks-file {}: {e}", path.display()))?;
    Ok(Some(vbackup_engine::hooks::HookFile::parse(
        &text,
        &path.display().to_string(),
    )?))
}

/// A duration flag: 720h, 30d, 1h30m…
pub fn humantime_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (use e.g. 720h, 30d, 1h30m)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vbackup_engine::resources::request::DEFAULT_TTL;

    #[test]
    fn ttl_accepts_hours_and_days() {
        assert_eq!(humantime_duration("720h").unwrap(), DEFAULT_TTL);
        assert_eq!(humantime_duration("30d").unwrap(), DEFAULT_TTL);
        assert!(humantime_duration("soon").is_err());
    }
}
