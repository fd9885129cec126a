//! Rendering: aligned tables for people, JSON or YAML for scripts.

use std::fmt::Write as _;

use serde::Serialize;

/// The errors (the first ten unless `details`) and warnings sections of a `describe`.
pub fn errors_and_warnings(
    tally: &vbackup_engine::backups::record::Tally,
    details: bool,
) -> String {
    let mut out = format!("\nErrors ({}):\n", tally.error_count);
    let shown = if details {
        tally.errors.len()
    } else {
        tally.errors.len().min(10)
    };
    for e in &tally.errors[..shown] {
        out += &format!("  {}: {}\n", e.object, e.message);
    }
    if shown < tally.errors.len() {
        out += "  … use --details for all\n";
    }
    out += &format!("\nWarnings ({}):\n", tally.warnings.len());
    for w in &tally.warnings {
        out += &format!("  {w}\n");
    }
    out
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns, like `kubectl get`.
    Table,
    /// JSON.
    Json,
    /// YAML.
    Yaml,
}

/// Prints `value` as JSON or YAML; returns false for `Table`, which the caller renders.
pub fn print_structured<T: Serialize>(format: OutputFormat, value: &T) -> anyhow::Result<bool> {
    match format {
        OutputFormat::Table => Ok(false),
        OutputFormat::Json => {
            println!("{}", serde_json::to_string_pretty(value)?);
            Ok(true)
        }
        OutputFormat::Yaml => {
            print!("{}", serde_saphyr::to_string(value)?);
            Ok(true)
        }
    }
}

/// Formats rows under upper-case headers with columns separated by three spaces, as
/// kubectl does.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (i, cell) in cells.enumerate() {
            let _ = write!(text, "{cell:<width$}   ", width = widths[i]);
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut headers.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

/// An error and its causes on one line, as `outer: inner: root`.
pub fn error_chain(error: &anyhow::Error) -> String {
    let mut text = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns_like_kubectl() {
        let rows = vec![
            vec!["default".to_string(), "s3".to_string()],
            vec!["x".into(), "filesystem".into()],
        ];
        assert_eq!(
            table(&["NAME", "PROVIDER"], &rows),
            "NAME      PROVIDER\ndefault   s3\nx         filesystem\n"
        );
    }

    #[test]
    fn error_chain_does_not_repeat_causes_already_in_the_message() {
        let root = anyhow::anyhow!("bucket missing");
        let err = root.context("check failed: bucket missing");
        assert_eq!(error_chain(&err), "check failed: bucket missing");
    }
}
