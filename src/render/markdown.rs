//! `plan --output markdown`: a pull-request comment. A summary table, then one collapsible
//! section per changed account; nothing but the plan, and no terminal colours.

use std::fmt::Write;

use super::{Counts, describe, summary_line};
use crate::domain::Mode;
use crate::plan::AccountPlan;

/// A plan without warnings; see [`markdown_with_warnings`].
pub fn markdown(plans: &[AccountPlan]) -> String {
    markdown_with_warnings(plans, &[])
}

/// The comment: the summary line, the warnings of the manifests (a section, when there are
/// any), the table and one collapsible section per changed account.
pub fn markdown_with_warnings(plans: &[AccountPlan], warnings: &[String]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "### rolecall plan\n");
    let _ = writeln!(out, "{}\n", summary_line(plans));
    if !warnings.is_empty() {
        let _ = writeln!(out, "#### Warnings\n");
        for w in warnings {
            let _ = writeln!(out, "- {}", inline(w));
        }
        let _ = writeln!(out);
    }
    let changed: Vec<&AccountPlan> = plans
        .iter()
        .filter(|p| p.has_changes() || p.refused.is_some() || !p.errors.is_empty())
        .collect();
    if changed.is_empty() {
        return out;
    }
    let _ = writeln!(
        out,
        "| account | add | change | remove | invitations | status |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---|");
    for p in &changed {
        let c = Counts::of(&p.changes);
        let status = if let Some(r) = &p.refused {
            format!("⛔ refused: {}", escape(&r.to_string()))
        } else if !p.errors.is_empty() {
            format!("⛔ {} error(s)", p.errors.len())
        } else if p.mode == Mode::Observe {
            "👀 observe only".to_string()
        } else {
            "✅ will apply".to_string()
        };
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} | {} |",
            escape(&p.customer_number),
            c.add,
            c.change,
            c.remove,
            c.invite,
            status
        );
    }
    for p in &changed {
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "<details><summary><code>{}</code> — {} change(s) — {}</summary>\n",
            html(&p.customer_number),
            p.changes.len(),
            html(&p.source)
        );
        let _ = writeln!(out, "```diff");
        if let Some(reason) = &p.refused {
            let _ = writeln!(out, "! refused: {}", fence_safe(&reason.to_string()));
        }
        for e in &p.errors {
            let _ = writeln!(out, "! {}", fence_safe(&e.to_string()));
        }
        for c in &p.changes {
            let _ = writeln!(out, "{} {}", c.action.sign(), fence_safe(&describe(c)));
        }
        let _ = writeln!(out, "```\n\n</details>");
    }
    out
}

/// Table cells: pipes and newlines would break the row.
fn escape(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

fn html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Running text: nothing in it is read as markup, HTML or a line break.
fn inline(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '#' | '~' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A line inside a fenced block must not close the fence.
fn fence_safe(s: &str) -> String {
    s.replace("```", "`\u{200b}``").replace(['\n', '\r'], " ")
}
