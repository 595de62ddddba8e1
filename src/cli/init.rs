//! `rolecall init [DIR]`: a starter Portal and CustomerAccount that validate and plan as
//! written, with comments that explain each field, so a new user edits instead of starting
//! from a blank page.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The starter Portal: the embedded sandbox, so `plan` works before any portal is reachable.
pub const PORTAL: &str = r#"# Where rolecall connects, and as whom.
#
# `sandbox:FILE` is the embedded reference portal, stored in a local SQLite file: plan and
# apply work on this machine with no server and no token. For a real portal replace the url:
#   url: https://portal.example.net     # the portal API's base URL
# and put its bearer token in the environment variable named by tokenEnv (never in a file).
# `--portal URL` or ROLECALL_PORTAL override this url for one run.
apiVersion: rolecall.dev/v1alpha1
kind: Portal
metadata:
  name: main
spec:
  url: sandbox:.rolecall/sandbox.db
  tokenEnv: ROLECALL_TOKEN
  # For the Kubernetes controller, the token comes from a Secret instead:
  # tokenSecretRef: {name: portal-token, key: token}
"#;

/// The starter CustomerAccount: one admin, one technical contact with an end date, one
/// notification contact, and the safety policy spelled out with its defaults.
pub const ACCOUNT: &str = r#"# One customer account: who may act on it, in which roles, and who receives its e-mail.
# Everything the portal holds for this account but this file does not declare is removed
# (policy.prune), so declare every person who should keep access.
apiVersion: rolecall.dev/v1alpha1
kind: CustomerAccount
metadata:
  name: example
spec:
  # The portal's customer number (a string), and how the account is shown.
  customerNumber: "10001"
  displayName: Example Ltd
  # Role dates (from/until) are whole days in this IANA time zone, both inclusive.
  timeZone: Europe/Zurich
  members:
    # A person with a login: cockpit-access lets them log in; customer-admin makes them the
    # main contact. Keep at least one member with both: rolecall refuses any plan that would
    # leave the account without an admin.
    - email: admin@example.com
      name: Alex Admin
      roles: [cockpit-access, customer-admin]
    # A temporary technical contact: the role ends after 2030-12-31 (Zurich time).
    - email: contractor@example.com
      roles:
        - cockpit-access
        - {name: technical-contact, until: 2030-12-31}
  contacts:
    # E-mail only: receives these notifications, cannot log in.
    - email: billing@example.com
      name: Billing
      notifications: [invoices, renewals]
  policy:
    prune: true          # remove what is not declared here; false = only ever add
    maxRemovals: "25%"   # refuse a plan removing more than this (left out: 25%, never fewer than 3)
    ignore: []           # e-mail globs rolecall never touches, e.g. "*@provider.example"
    # allowedEmailDomains: [example.com]   # refuse people outside these domains
"#;

/// The files `init` writes, relative to DIR.
pub const FILES: [(&str, &str); 2] = [("portal.yaml", PORTAL), ("account.yaml", ACCOUNT)];

pub fn run(dir: &Path) -> ExitCode {
    let targets: Vec<(PathBuf, &str)> = FILES
        .iter()
        .map(|(name, text)| (dir.join(name), *text))
        .collect();
    // Check every file before writing any, so a refusal leaves the directory as it was.
    let existing: Vec<String> = targets
        .iter()
        .filter(|(p, _)| p.exists())
        .map(|(p, _)| p.display().to_string())
        .collect();
    if !existing.is_empty() {
        eprintln!(
            "{}: already exists; rolecall init never overwrites a file (choose another directory)",
            existing.join(", ")
        );
        return ExitCode::from(1);
    }
    if let Err(e) = std::fs::create_dir_all(dir) {
        eprintln!("{}: the directory cannot be created: {e}", dir.display());
        return ExitCode::from(1);
    }
    for (path, text) in &targets {
        // create_new: a file that appeared since the check is still not overwritten.
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .and_then(|mut f| f.write_all(text.as_bytes()));
        if let Err(e) = written {
            eprintln!("{}: the file cannot be written: {e}", path.display());
            return ExitCode::from(1);
        }
    }
    if !super::quiet() {
        let shown = dir.display();
        println!(
            "Wrote {shown}/portal.yaml and {shown}/account.yaml. Next:\n  rolecall validate -f {shown}\n  rolecall plan -f {shown}"
        );
    }
    ExitCode::SUCCESS
}
