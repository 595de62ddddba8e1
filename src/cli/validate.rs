//! `rolecall validate`: offline checks of the manifests.

use std::process::ExitCode;

use super::{FileArgs, ValidateOutput, clock_now, print_diagnostics, quiet};
use crate::manifest;

pub fn run(files: &FileArgs, output: ValidateOutput) -> ExitCode {
    let now = match clock_now() {
        Ok(now) => now,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(1);
        }
    };
    let checked = manifest::load_and_check(&files.files, now);
    let shown = checked
        .diagnostics
        .iter()
        .filter(|d| d.is_error() || !quiet());
    match output {
        ValidateOutput::Text => print_diagnostics(&checked.diagnostics),
        ValidateOutput::Github => {
            for d in shown {
                println!("{}", d.github_annotation());
            }
        }
        ValidateOutput::Json => {
            let list: Vec<serde_json::Value> = shown.map(|d| d.to_json()).collect();
            println!(
                "{}",
                serde_json::to_string_pretty(&list).unwrap_or_default()
            );
        }
    }
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
        let sentence = format!("no manifests found in {}", named.join(", "));
        if output == ValidateOutput::Github {
            println!("::error title=rolecall validate::{sentence}");
        }
        eprintln!("{sentence}");
        return ExitCode::from(1);
    }
    if quiet() {
        return ExitCode::SUCCESS;
    }
    let d = &checked.desired;
    let members: usize = d.accounts.iter().map(|a| a.members.len()).sum();
    let contacts: usize = d.accounts.iter().map(|a| a.contacts.len()).sum();
    let summary = format!(
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
    // Machine formats keep standard output to the format alone.
    if output == ValidateOutput::Text {
        println!("{summary}");
    } else {
        eprintln!("{summary}");
    }
    ExitCode::SUCCESS
}

fn plural(n: usize, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 { one } else { many }
}
