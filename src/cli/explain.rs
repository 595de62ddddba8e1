//! `rolecall explain EMAIL`: every account where this person is a member or a contact — roles
//! and windows, invitation state, where it is declared and who declared it when. Only reads.

use std::fmt::Write;
use std::process::ExitCode;

use super::{FileArgs, PortalArgs};
use crate::domain::text::printable;
use crate::domain::{DesiredAccount, email_key};
use crate::review::{ReviewRow, RowKind};

pub async fn run(email: &str, files: &FileArgs, portal: &PortalArgs) -> ExitCode {
    let read = match super::review::read(files, portal, &[]).await {
        Ok(r) => r,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(1);
        }
    };
    let key = email_key(email);
    let rows: Vec<ReviewRow> =
        super::review::rows(&read, crate::review::DEFAULT_EXPIRING_WITHIN_DAYS)
            .into_iter()
            .filter(|r| email_key(&r.email) == key)
            .collect();
    let text = render(email, &rows, &read.declared_all);
    print!("{text}");
    ExitCode::SUCCESS
}

/// The explanation as text, every value with its control characters escaped.
pub fn render(email: &str, rows: &[ReviewRow], declared: &[DesiredAccount]) -> String {
    let key = email_key(email);
    let mut out = String::new();
    let mut last: Option<(&str, RowKind)> = None;
    for r in rows {
        if last != Some((r.customer_number.as_str(), r.kind)) {
            let _ = writeln!(
                out,
                "{} ({}): {} {}",
                printable(&r.customer_number),
                printable(&r.account),
                r.kind.as_str(),
                printable(&r.email)
            );
            last = Some((r.customer_number.as_str(), r.kind));
        }
        let what = match (r.kind, r.role.is_empty()) {
            (RowKind::Member, true) => "(no role)".to_string(),
            (RowKind::Contact, true) => "(no notification kind)".to_string(),
            (RowKind::Member, false) => format!("role {}", printable(&r.role)),
            (RowKind::Contact, false) => format!("notification {}", printable(&r.role)),
        };
        let mut line = format!("  {what}");
        if let Some(from) = &r.from {
            let _ = write!(line, " from {}", printable(from));
        }
        if let Some(until) = &r.until {
            let _ = write!(line, " until {}", printable(until));
        }
        if r.kind == RowKind::Member {
            let _ = write!(
                line,
                ", {}, invitation {}",
                if r.user_linked == Some(true) {
                    "user linked"
                } else {
                    "no user linked"
                },
                r.invitation.as_str()
            );
            if let Some(sent) = &r.invitation_sent_at {
                let _ = write!(line, " (sent {})", printable(sent));
            }
        }
        let _ = writeln!(out, "{line}");
        match &r.declared_at {
            Some(at) => {
                let _ = write!(out, "    declared at {}", printable(at));
                match (&r.granted_by, &r.granted_commit, &r.granted_at) {
                    (Some(by), Some(commit), Some(when)) => {
                        let _ = writeln!(
                            out,
                            " by {} in {} on {}",
                            printable(by),
                            printable(commit.get(..12).unwrap_or(commit)),
                            printable(when)
                        );
                    }
                    _ => out.push_str(" (no git history for that line)\n"),
                }
            }
            None => out.push_str("    not declared in the manifests\n"),
        }
        if !r.findings.is_empty() {
            let _ = writeln!(out, "    findings: {}", r.findings_text());
        }
    }
    // What the manifests declare for this person that the portal does not show (yet).
    for a in declared {
        for m in a.members.iter().filter(|m| m.email.key() == key) {
            for role in &m.roles {
                let held = rows.iter().any(|r| {
                    r.customer_number == a.customer_number
                        && r.kind == RowKind::Member
                        && r.role == role.name
                });
                if !held {
                    let _ = writeln!(
                        out,
                        "{}: member {}: role {} is declared at {} but the portal does not show it",
                        printable(&a.customer_number),
                        printable(m.email.as_str()),
                        printable(&role.name),
                        printable(&role.source.to_string())
                    );
                }
            }
        }
    }
    if out.is_empty() {
        let _ = writeln!(
            out,
            "{} is neither a member nor a contact of any account read",
            printable(email)
        );
    }
    out
}
