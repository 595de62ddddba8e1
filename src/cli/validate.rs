//! `rolecall validate`: offline checks of the manifests.

use std::process::ExitCode;

use super::{FileArgs, clock_now, print_diagnostics};
use crate::manifest;

pub fn run(files: &FileArgs) -> ExitCode {
    let now = match clock_now() {
        Ok(now) => now,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(1);
        }
    };
    let checked = manifest::load_and_check(&files.files, now);
    print_diagnostics(&checked.diagnostics);
    let errors = checked.errors().count();
    let warnings = checked.warnings().count();
    if errors > 0 {
        eprintln!(
            "manifests invalid: {errors} {}, {warnings} {}; nothing is applied until every error is fixed",
            plural(errors, "error", "errors"),
            plural(warnings, "warning", "warnings"),
        );
        return ExitCode::from(1);
    }
    if checked.documents == 0 {
        let named: Vec<String> = files
            .files
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        eprintln!("no manifests found in {}", named.join(", "));
        return ExitCode::from(1);
    }
    let d = &checked.desired;
    let members: usize = d.accounts.iter().map(|a| a.members.len()).sum();
    let contacts: usize = d.accounts.iter().map(|a| a.contacts.len()).sum();
    println!(
        "{} {} valid: {} {}, {} {}, {} {}, {} {}{}",
        checked.documents,
        plural(checked.documents, "document", "documents"),
        d.portals.len(),
        plural(d.portals.len(), "portal", "portals"),
        d.accounts.len(),
        plural(d.accounts.len(), "account", "accounts"),
        members,
        plural(members, "member", "members"),
        contacts,
        plural(contacts, "contact", "contacts"),
        if warnings > 0 {
            format!(" ({warnings} {})", plural(warnings, "warning", "warnings"))
        } else {
            String::new()
        }
    );
    ExitCode::SUCCESS
}

fn plural(n: usize, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 { one } else { many }
}
