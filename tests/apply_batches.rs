//! `apply` plans, shows and applies the accounts a batch at a time: what it prints and writes
//! is what one plan of all the accounts says, and an error in the last batch stops everything.

mod common;

use common::{Server, stderr, stdout};

fn manifests(dir: &std::path::Path, last_role: &str) {
    let mut text = String::new();
    for i in 0..7 {
        let role = if i == 6 { last_role } else { "cockpit-access" };
        text.push_str(&format!(
            "---\napiVersion: rolecall.dev/v1alpha1\nkind: CustomerAccount\nmetadata: {{name: acct-{i}}}\nspec:\n  customerNumber: \"2000{i}\"\n  displayName: Customer {i}\n  members:\n    - email: person@c{i}.example\n      roles: [{role}]\n"
        ));
    }
    std::fs::write(dir.join("fleet.yaml"), text).unwrap();
}

fn batched(server: &Server, dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    let mut cmd = std::process::Command::new(common::bin());
    cmd.args(args)
        .current_dir(dir)
        .env("ROLECALL_PORTAL", &server.url)
        .env("ROLECALL_TOKEN", common::OPERATOR_TOKEN)
        .env("ROLECALL_NOW", common::NOW)
        .env("NO_COLOR", "1")
        .env("ROLECALL_APPLY_BATCH", "2");
    cmd.output().unwrap()
}

#[test]
fn batches_print_and_apply_what_one_plan_says() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    manifests(dir.path(), "cockpit-access");
    let plan = server.rolecall_in(dir.path(), &["plan", "-f", "fleet.yaml"]);
    assert_eq!(plan.status.code(), Some(0), "{}", stderr(&plan));
    let apply = batched(
        &server,
        dir.path(),
        &["apply", "-f", "fleet.yaml", "--auto-approve"],
    );
    assert_eq!(apply.status.code(), Some(0), "{}", stderr(&apply));
    let shown = stdout(&apply);
    assert!(
        shown.starts_with(&stdout(&plan)),
        "apply showed another plan:\n{shown}\n---\n{}",
        stdout(&plan)
    );
    assert!(shown.contains("Apply complete"), "{shown}");
    let again = server.rolecall_in(
        dir.path(),
        &["plan", "-f", "fleet.yaml", "--detailed-exitcode"],
    );
    assert_eq!(again.status.code(), Some(0), "{}", stdout(&again));
}

#[test]
fn an_error_in_the_last_batch_stops_every_batch() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    manifests(dir.path(), "no-such-role");
    let apply = batched(
        &server,
        dir.path(),
        &["apply", "-f", "fleet.yaml", "--auto-approve"],
    );
    assert_eq!(apply.status.code(), Some(1), "{}", stdout(&apply));
    assert!(
        stderr(&apply).contains("nothing was applied"),
        "{}",
        stderr(&apply)
    );
    let accounts = server.client().get("/v1/accounts");
    assert_eq!(
        accounts["items"].as_array().map(Vec::len),
        Some(0),
        "{accounts}"
    );
}
