//! How backups look in a terminal: the outcome line, the `get` table and `describe`.

use vbackup_engine::backups::{BackupRecord, BackupSummary};

use crate::output::table;

/// The outcome of `backup create`, for people.
pub fn print_outcome(record: &BackupRecord) {
    let s = &record.status;
    println!(
        "backup {} {}: {} objects, {} errors, {} warnings, {} bytes in location {}",
        record.name(),
        s.phase,
        s.tally.total(),
        s.tally.error_count,
        s.tally.warnings.len(),
        s.archive_bytes,
        s.location
    );
    if let Some(f) = &s.failure {
        eprintln!("error: {f}");
    }
    for e in s.tally.errors.iter().take(10) {
        eprintln!("error: {}: {}", e.object, e.message);
    }
    if s.tally.error_count > 10 {
        eprintln!(
            "… see `kubectl vbackup backup describe {} --details`",
            record.name()
        );
    }
}

/// The name of a listed backup.
pub fn summary_name(s: &BackupSummary) -> &str {
    match s {
        BackupSummary::Recorded(r) => r.name(),
        BackupSummary::Incomplete { name, .. } => name,
    }
}

/// The `backup get` table: one row per (location, backup).
pub fn backups_table(rows: &[(String, BackupSummary)]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|(location, s)| match s {
            BackupSummary::Recorded(r) => vec![
                r.name().to_string(),
                r.status.phase.to_string(),
                r.status.tally.error_count.to_string(),
                r.status.tally.warnings.len().to_string(),
                r.status.started.clone(),
                r.status.expires.clone(),
                location.clone(),
                if r.spec.selector.is_empty() {
                    "<none>".into()
                } else {
                    r.spec.selector.clone()
                },
            ],
            BackupSummary::Incomplete { name, phase } => vec![
                name.clone(),
                phase.to_string(),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
                location.clone(),
                String::new(),
            ],
        })
        .collect();
    table(
        &[
            "NAME",
            "STATUS",
            "ERRORS",
            "WARNINGS",
            "CREATED",
            "EXPIRES",
            "STORAGE LOCATION",
            "SELECTOR",
        ],
        &rows,
    )
}

/// `backup describe`: everything the record says; `details` lists every error.
pub fn describe(r: &BackupRecord, details: bool) -> String {
    let s = &r.status;
    let list = |v: &[String], empty: &str| {
        if v.is_empty() {
            empty.to_string()
        } else {
            v.join(", ")
        }
    };
    let mut out = format!(
        "Name:                 {}\nPhase:                {}\n",
        r.name(),
        s.phase
    );
    if let Some(f) = &s.failure {
        out += &format!("Failure:              {f}\n");
    }
    out += &format!(
        "Storage location:     {}\nCluster version:      {}\nStarted:              {}\nCompleted:            {}\nExpires:              {}\n\
         Namespaces:           {} (excluded: {})\nResources:            {} (excluded: {})\nSelector:             {}\n\
         Cluster resources:    {:?}\nDependencies:         {}\nTTL:                  {}\nArchive:              {} bytes\n",
        s.location,
        s.cluster_version,
        s.started,
        s.completed.as_deref().unwrap_or("-"),
        s.expires,
        list(&r.spec.namespaces.include, "*"),
        list(&r.spec.namespaces.exclude, "<none>"),
        list(&r.spec.resources.include, "*"),
        list(&r.spec.resources.exclude, "<none>"),
        if r.spec.selector.is_empty() {
            "<none>"
        } else {
            &r.spec.selector
        },
        r.spec.include_cluster_resources,
        r.spec.include_dependencies,
        humantime::format_duration(r.spec.ttl),
        s.archive_bytes,
    );
    out += &format!("\nObjects ({}):\n", s.tally.total());
    for (resource, n) in &s.tally.counts {
        out += &format!("  {resource}: {n}\n");
    }
    if !s.skipped.is_empty() {
        out += "\nLeft out by default:\n";
        for k in &s.skipped {
            match k.count {
                0 => out += &format!("  {} (the whole type): {}\n", k.resource, k.reason),
                n => out += &format!("  {} ({n}): {}\n", k.resource, k.reason),
            }
        }
    }
    out += &crate::commands::volumes::describe_volumes(&s.volumes, details, false);
    if s.hooks.attempted > 0 {
        out += &format!(
            "\nHooks: {} attempted, {} failed (each run in `backup logs`)\n",
            s.hooks.attempted, s.hooks.failed
        );
    }
    if !s.dumps.is_empty() {
        out += &format!("\nDatabase dumps ({}):\n", s.dumps.len());
        for d in &s.dumps {
            out += &format!(
                "  {}/{} {}: {} {} bytes in {}s{}\n",
                d.namespace,
                d.pod,
                d.file,
                d.phase,
                d.bytes,
                d.duration_seconds,
                d.message
                    .as_deref()
                    .map(|m| format!(" ({m})"))
                    .unwrap_or_default()
            );
        }
    }
    out += &crate::output::errors_and_warnings(&s.tally, details);
    out
}
