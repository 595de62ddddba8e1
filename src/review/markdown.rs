//! The review as Markdown, to post as an issue: what was read, the findings counted, and the
//! table of every row.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::{COLUMNS, Finding, ReviewDocument};

/// A table cell: control characters escaped, `|` and Markdown's active characters escaped, so
/// that a name from the portal cannot break the table or inject a link or an image.
pub fn cell(text: &str) -> String {
    let text = crate::domain::text::printable(text);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '|' | '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '#' | '!' | '~' => {
                out.push('\\');
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

pub fn render(doc: &ReviewDocument) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "## Access review\n");
    let _ = writeln!(out, "- generated at: {}", cell(&doc.generated_at));
    let _ = writeln!(out, "- portal: {}", cell(&doc.portal));
    let _ = writeln!(
        out,
        "- manifests commit: {}",
        doc.manifests_commit
            .as_deref()
            .map_or("(not in git)".into(), cell)
    );
    let _ = writeln!(out, "- population (SHA-256): `{}`", doc.population);
    let _ = writeln!(out, "- rows: {}\n", doc.rows.len());
    let mut counts: BTreeMap<Finding, usize> = BTreeMap::new();
    for row in &doc.rows {
        for f in &row.findings {
            *counts.entry(*f).or_default() += 1;
        }
    }
    if counts.is_empty() {
        let _ = writeln!(out, "No findings.\n");
    } else {
        let _ = writeln!(out, "| finding | rows |\n|---|---:|");
        for (f, n) in &counts {
            let _ = writeln!(out, "| {} | {n} |", f.as_str());
        }
        out.push('\n');
    }
    let _ = writeln!(out, "| {} |", COLUMNS.join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(COLUMNS.len()));
    for row in &doc.rows {
        let cells: Vec<String> = row.cells().iter().map(|c| cell(c)).collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    out
}
