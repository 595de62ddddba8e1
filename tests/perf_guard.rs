//! A cheap guard of the performance properties that do not depend on the machine: a zero-drift
//! plan reads the portal with bulk pages (requests ≈ objects / 1000), and apply writes exactly
//! the changes, no redundant call. Nothing here measures time; `benches/fleet.rs` does that.

mod common;

use std::io::Write;
use std::path::Path;

use common::*;

const ACCOUNTS: usize = 250;
const MEMBERS: usize = 20;
const CONTACTS: usize = 2;

/// The fleet: `ACCOUNTS` accounts of `MEMBERS` members and `CONTACTS` contacts, in files of 50
/// accounts. With `drift`, every hundredth member is renamed.
fn fleet(dir: &Path, drift: bool) -> usize {
    std::fs::create_dir_all(dir).unwrap();
    let mut renamed = 0;
    for file in 0..ACCOUNTS / 50 {
        let mut text = String::new();
        for i in file * 50..(file + 1) * 50 {
            let cn = 200000 + i;
            text.push_str(&format!(
                "---\napiVersion: rolecall.dev/v1alpha1\nkind: CustomerAccount\nmetadata: {{name: acct-{cn}}}\nspec:\n  customerNumber: \"{cn}\"\n  displayName: Customer {cn}\n  timeZone: Europe/Zurich\n  members:\n"
            ));
            for m in 0..MEMBERS {
                let name = if drift && (i * MEMBERS + m) % 100 == 7 {
                    renamed += 1;
                    format!("Person {m} (renamed)")
                } else {
                    format!("Person {m}")
                };
                let roles = match m {
                    0 => "[cockpit-access, customer-admin]",
                    1 => "[cockpit-access, {name: technical-contact, until: 2027-12-31}]",
                    _ => "[cockpit-access]",
                };
                text.push_str(&format!(
                    "    - email: person{m}@c{cn}.example\n      name: {name}\n      roles: {roles}\n"
                ));
            }
            text.push_str("  contacts:\n");
            for c in 0..CONTACTS {
                text.push_str(&format!(
                    "    - email: contact{c}@c{cn}.example\n      name: Contact {c}\n      notifications: [invoices]\n"
                ));
            }
        }
        let mut f = std::fs::File::create(dir.join(format!("fleet-{file}.yaml"))).unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }
    renamed
}

/// Request-log lines written since `from`, split into reads and writes.
fn requests_since(server: &Server, from: usize) -> (usize, usize) {
    let lines = server.log_lines();
    let requests: Vec<&String> = lines[from..]
        .iter()
        .filter(|l| l.split_whitespace().count() == 4)
        .collect();
    let reads = requests.iter().filter(|l| l.starts_with("GET ")).count();
    (reads, requests.len() - reads)
}

/// The number of changes a JSON plan document lists.
fn planned_writes(plan: &serde_json::Value) -> usize {
    plan["summary"]
        .as_object()
        .map(|s| s.values().filter_map(|v| v.as_u64()).sum::<u64>() as usize)
        .unwrap_or(0)
}

#[test]
fn zero_drift_plans_read_in_bulk_and_apply_writes_only_the_changes() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let clean = dir.path().join("clean");
    let drifted = dir.path().join("drifted");
    fleet(&clean, false);
    let renamed = fleet(&drifted, true);
    let (c, d) = (clean.to_str().unwrap(), drifted.to_str().unwrap());

    // Seeding: one write per account, member and contact, and one invitation per member
    // (every one can log in and none has a user account yet); nothing else.
    let from = server.log_lines().len();
    let seed = server.rolecall(&["apply", "-f", c, "--auto-approve"]);
    assert_eq!(seed.status.code(), Some(0), "{}", stderr(&seed));
    let (_, writes) = requests_since(&server, from);
    assert_eq!(writes, ACCOUNTS * (1 + 2 * MEMBERS + CONTACTS));

    // A zero-drift plan: bulk reads in full pages.
    let from = server.log_lines().len();
    let plan = server.rolecall(&["plan", "-f", c, "--detailed-exitcode"]);
    assert_eq!(plan.status.code(), Some(0), "{}", stderr(&plan));
    let (reads, writes) = requests_since(&server, from);
    let objects = ACCOUNTS * (1 + MEMBERS + CONTACTS);
    assert_eq!(writes, 0);
    assert!(
        reads <= objects / 1000 + 10,
        "{reads} requests for {objects} objects"
    );

    // 1 % drift: the plan names one change per renamed member, and apply makes exactly those
    // writes.
    let plan = server.rolecall(&["plan", "-f", d, "--output", "json"]);
    assert_eq!(plan.status.code(), Some(0), "{}", stderr(&plan));
    let document: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    assert_eq!(planned_writes(&document), renamed, "{document}");
    let from = server.log_lines().len();
    let apply = server.rolecall(&["apply", "-f", d, "--auto-approve"]);
    assert_eq!(apply.status.code(), Some(0), "{}", stderr(&apply));
    let (_, writes) = requests_since(&server, from);
    assert_eq!(writes, renamed);

    let again = server.rolecall(&["plan", "-f", d, "--detailed-exitcode"]);
    assert_eq!(again.status.code(), Some(0), "{}", stdout(&again));
}
